"""Check a running ``simimg-admin serve`` from outside, as a browser and an API user would.

1. ``GET /`` answers HTTP 200 (waits while the server starts; fails at once if it exits).
2. One search through the page's ``/search`` API (gradio_client, called as in
   tests/test_ui_api.py) returns results, and the file named by ``--expect-first`` ranks first.

Used by scripts/check_main_command.sh. Needs gradio_client and psutil (the test extras), so run
it with the test venv's Python. Exit 0 when every check passes, else one line on stderr, exit 1.

    python scripts/check_served_page.py URL QUERY --expect-first NAME [--pid PID] [--timeout S]
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil


class CheckFailed(Exception):
    """A check did not pass; the message is the one line to print."""


def _running(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for_page(url: str, pid: int | None, timeout: float) -> float:
    """Seconds until ``GET url`` answered 200; CheckFailed if the server exits or times out."""
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < timeout:
        if not _running(pid):
            raise CheckFailed(f"the server (pid {pid}) exited before {url} answered ({last})")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - start
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:  # connection refused while starting, timeouts
            last = str(getattr(exc, "reason", exc))
        time.sleep(0.5)
    raise CheckFailed(f"{url} did not answer HTTP 200 within {timeout:.0f} s ({last})")


def search_once(url: str, query: Path, space: str, k: int) -> list[dict]:
    """Result rows of one upload search through the page's ``/search`` endpoint."""
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False)
        _gallery, _reconstruction, rows = client.predict(
            handle_file(str(query)), space, k, "all", api_name="/search"
        )
    except Exception as exc:  # gradio_client raises many types; report any in one line
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise CheckFailed(f"search through {url} failed: {type(exc).__name__}: {reason}") from exc
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="the page, e.g. http://127.0.0.1:7861/")
    ap.add_argument("query", type=Path, help="image to upload as the search query")
    ap.add_argument("--expect-first", required=True, metavar="NAME",
                    help="file name the top result must have")
    ap.add_argument("--space", default="mobilenet")
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--pid", type=int, help="server process; stop waiting if it exits")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for the page")
    args = ap.parse_args(argv)
    try:
        if not args.query.is_file():
            raise CheckFailed(f"query image not found: {args.query}")
        took = wait_for_page(args.url, args.pid, args.timeout)
        print(f"page: HTTP 200 on {args.url} after {took:.1f} s", flush=True)
        start = time.monotonic()
        rows = search_once(args.url, args.query, args.space, args.k)
        took = time.monotonic() - start
        if not rows:
            raise CheckFailed(f"search for {args.query.name} returned no results")
        for row in rows:
            print(f"  {row['score']:.4f}  {row['image_path']}")
        first = Path(rows[0]["image_path"]).name
        if first != args.expect_first:
            raise CheckFailed(
                f"search for {args.query.name} ranked {first} first, not {args.expect_first}"
            )
        print(f"search: {len(rows)} results for {args.query.name} in {took:.1f} s "
              f"({args.space}), {first} first", flush=True)
    except CheckFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
