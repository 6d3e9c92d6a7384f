"""A small HTTP client of the service, used by the CLI when a service holds the data dir."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from api import API_PREFIX as PREFIX
from service.errors import SimimgError
from service.filters import NO_FILTERS, SearchFilters
from service.holder import holding_service
from service.pipeline import read_image_bytes

POLL_SECONDS = 0.2
FINISHED = ("done", "failed", "cancelled", "interrupted")


class ServiceError(SimimgError):
    """The service refused the request; the message is the service's own one line."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ServiceClient:
    """Calls ``/api/v1`` with a bearer token; every error becomes a :class:`ServiceError`."""

    def __init__(self, url: str, token: str | None, timeout: float = 600.0) -> None:
        self.url = url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url + PREFIX, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.text
            except ValueError:
                message = response.text or f"HTTP {response.status_code}"
            raise ServiceError(message, response.status_code)
        return response.json()

    def reachable(self) -> bool:
        try:
            self._http.get("/health", timeout=5.0)
        except httpx.HTTPError:
            return False
        return True

    def search(
        self,
        image: Path | None,
        space: str,
        k: int,
        cluster: int | str | None,
        max_file_bytes: int,
        filters: SearchFilters = NO_FILTERS,
        like: Sequence[str] = (),
        unlike: Sequence[str] = (),
        min_score: float | None = None,
        exact: bool = False,
    ) -> list[dict[str, Any]]:
        """Search with a local file (and/or liked/unliked stored images); the file is read
        here under the same size limit as a direct search, and named by its path so errors
        read as they would without the service."""
        form: dict[str, Any] = {"k": str(k), "space": space, "like": list(like),
                                "unlike": list(unlike), **filters.as_params()}
        if cluster is not None:
            form["cluster"] = str(cluster)
        if min_score is not None:
            form["min_score"] = repr(min_score)
        if exact:
            form["exact"] = "true"
        files = None
        if image is not None:
            files = {"image": (str(image), read_image_bytes(image, max_file_bytes))}
        answer = self._call("POST", "/search", files=files, data=form)
        return answer["results"]

    def browse(
        self, filters: SearchFilters, cluster: int | None, limit: int
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {**filters.as_params(), "limit": limit}
        if cluster is not None:
            params["cluster"] = cluster
        return self._call("GET", "/browse", params=params)["results"]

    def facets(
        self, key: str, filters: SearchFilters, cluster: int | None, limit: int
    ) -> list[tuple[Any, int]]:
        params: dict[str, Any] = {**filters.as_params(), "limit": limit}
        if cluster is not None:
            params["cluster"] = cluster
        answer = self._call("GET", f"/facets/{key}", params=params)
        return [(item["value"], item["count"]) for item in answer["counts"]]

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def clusters(self, examples: int) -> dict[str, Any]:
        return self._call("GET", "/clusters", params={"examples": examples})

    def export_labels(self, target: Path) -> int:
        """Write the CSV of every point's label to ``target``; returns the rows written."""
        response = self._http.get("/clusters/labels.csv")
        if response.status_code >= 400:
            raise ServiceError(response.json().get("message", response.text),
                               response.status_code)
        target.write_bytes(response.content)
        return max(0, response.text.count("\n") - 1)

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/jobs", json=body)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/jobs/{job_id}")

    def wait(
        self, job_id: str, on_update: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Poll until the job finishes; ``on_update`` gets every state seen."""
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["state"] in FINISHED:
                return job
            time.sleep(POLL_SECONDS)


def running_service(data_dir: Path, api_key: str | None = None) -> ServiceClient | None:
    """A client of the service holding ``data_dir``, if one is running and answers."""
    address = holding_service(data_dir)
    if address is None:
        return None
    client = ServiceClient(address.url, address.token or api_key)
    if not client.reachable():
        client.close()
        return None
    return client
