"""Commands run while ``simimg-admin serve`` holds the embedded data directory.

The service owns the collection then; a command sends it the same work (a search, a
status request, or a job) and prints the answer exactly as the direct command would,
with the progress bar driven by the job's progress. One note says the service did it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.progress import Progress, TaskID

from cli.common import err, fail, notice, progress_bar

if TYPE_CHECKING:
    from api.client import ServiceClient
    from service.config import Settings


def service_client(settings: Settings) -> ServiceClient | None:
    """A client of the running service holding the data directory (embedded store only)."""
    from service.holder import holding_service

    if settings.uses_server or holding_service(settings.data_dir) is None:
        return None  # the common case decided without loading the HTTP client
    from api.client import running_service

    client = running_service(settings.data_dir, settings.api_key)
    if client is not None:
        notice(f"done by the running service at {client.url} (it holds {settings.data_dir})")
    return client


def run_job(
    client: ServiceClient, body: dict[str, Any], unit: str = "images/s", label: str = ""
) -> dict[str, Any]:
    """Submit a job, show its progress (a bar per stage) and messages, return its result.

    Ctrl-C cancels the job. A job that fails exits 1 with the service's message.
    """
    job = client.submit(body)
    printed = 0
    tasks: dict[str, TaskID] = {}

    def show(state: dict[str, Any], progress: Progress) -> None:
        nonlocal printed
        for line in state["messages"][printed:]:
            err.print(line, highlight=False, markup=False, soft_wrap=True)
        printed = len(state["messages"])
        stage = state["progress"].get("stage")
        if stage is None:
            return
        if stage not in tasks:
            tasks[stage] = progress.add_task(label or stage, total=None)
        progress.update(tasks[stage], total=state["progress"].get("total"),
                        completed=state["progress"].get("done") or 0)

    try:
        with progress_bar(unit) as progress:
            final = client.wait(job["id"], lambda state: show(state, progress))
    except KeyboardInterrupt:
        client.cancel(job["id"])
        err.print(f"cancelled job {job['id']}", highlight=False)
        raise fail("interrupted", code=130) from None
    if final["state"] != "done":
        raise fail(final.get("error") or f"job {final['id']} {final['state']}")
    return final["result"]
