"""The Map tab: every image a dot at its ``simimg-admin map`` position, coloured by cluster.

The scatter is drawn in the browser by :file:`ui/map_tab.js` (a canvas; one pixel buffer,
no element per dot, so 100,000 dots stay smooth). The page sends it the positions once,
packed (two uint16 and one int32 per dot, base64: about 1 MB for 100,000 images) and keeps
the matching point ids here, under a token; the browser names a dot by its index and that
token when it hovers (thumbnail and path come back), clicks (a similarity search from that
image fills the gallery below) or exports a box or lasso selection (a CSV of id, path,
cluster). Nothing here computes a layout: that is :mod:`service.map_layout`.
"""

from __future__ import annotations

import base64
import csv
import io
import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from service.cluster_names import cluster_names
from service.errors import ImageDecodeError, PointNotFoundError
from service.map_layout import UNLABELLED, MapPoints, read_map
from service.search import FUSED
from service.store.base import PointFilter
from service.store.schema import PAYLOAD_PATH, VECTOR_AUTOENCODER, VECTOR_MOBILENET

SCRIPT = (Path(__file__).with_name("map_tab.js")).read_text(encoding="utf-8")
HOVER_SIDE = 128
KEPT_SNAPSHOTS = 8  # maps still answerable while other browsers reload theirs
SPACE_CHOICES = [("MobileNet", VECTOR_MOBILENET), ("Autoencoder", VECTOR_AUTOENCODER),
                 ("Fused", FUSED)]
NOT_MAPPED = ("**No map yet.** Run `simimg-admin map` to place the images, then press "
              "Reload.")

CSS = """
.simimg-map .map-toolbar { display: flex; flex-wrap: wrap; gap: 6px; align-items: center;
  margin-bottom: 6px; font-size: 14px; }
.simimg-map button, .simimg-map select { border: 1px solid #bbb; border-radius: 6px;
  padding: 2px 10px; background: #fafafa; cursor: pointer; }
.simimg-map button.active { background: #1f77b4; color: white; border-color: #1f77b4; }
.simimg-map button:disabled { opacity: .45; cursor: default; }
.simimg-map .map-status { color: #555; margin-left: 6px; }
.simimg-map .map-stage { position: relative; height: 620px; border: 1px solid #ddd;
  border-radius: 8px; overflow: hidden; }
.simimg-map canvas { position: absolute; left: 0; top: 0; }
.simimg-map .map-overlay { pointer-events: none; }
.simimg-map .map-tip { position: absolute; width: 176px; background: white; padding: 4px;
  border: 1px solid #999; border-radius: 6px; box-shadow: 0 2px 8px rgba(0,0,0,.25);
  pointer-events: none; font-size: 12px; word-break: break-all; }
.simimg-map .map-tip img { max-width: 168px; max-height: 168px; display: block;
  margin: 0 auto 3px; }
.simimg-map .map-legend { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 6px;
  font-size: 13px; }
.simimg-map .map-key { padding: 1px 8px; }
.simimg-map .map-key i { display: inline-block; width: 10px; height: 10px; border-radius: 5px;
  margin-right: 5px; }
"""


class MapView:
    """Server side of the Map tab: positions out, hover, click and export by dot index."""

    def __init__(self, page: Any) -> None:
        self.page = page  # ui.app.SearchPage: store, settings, searcher, images
        self._snapshots: OrderedDict[str, MapPoints] = OrderedDict()
        self._packed: dict[tuple[int, str | None, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- called from the browser (server functions) --------------------------------------

    def map_data(self, reload: bool = False) -> dict[str, Any]:
        """Every placed image, packed for the canvas, with the cluster legend.

        Packed once and kept while the collection's size, clustering run and number of
        unlabelled images stay the same (reading 100,000 payloads takes seconds); the
        map's Reload button reads everything again."""
        key = self._freshness()
        with self._lock:
            cached = self._packed.get(key)
        if cached is not None and not reload:
            return {**cached, "legend": self._legend(self._snapshots[cached["token"]].clusters)}
        answer = self._pack()
        with self._lock:
            self._packed = {key: answer} if "token" in answer else {}
        return answer

    def _freshness(self) -> tuple[int, str | None, int]:
        from service.clustering_runs import current_run

        run = current_run(self.page.settings) or {}
        store = self.page.store
        return store.count(), run.get("run_id"), store.count(PointFilter(unlabelled=True))

    def _pack(self) -> dict[str, Any]:
        points = read_map(self.page.store)
        if not points.ids:
            message = NOT_MAPPED.replace("**", "")
            if points.unplaced == 0:
                message = "The collection is empty: ingest a folder first."
            return {"message": message}
        token = self._keep(points)
        quantised = np.round(np.clip(points.xy, 0.0, 1.0) * 65535).astype("<u2")
        return {
            "token": token,
            "n": len(points.ids),
            "unplaced": points.unplaced,
            "x": _b64(quantised[:, 0]),
            "y": _b64(quantised[:, 1]),
            "c": _b64(points.clusters.astype("<i4")),
            "legend": self._legend(points.clusters),
        }

    def map_point(self, token: str, index: int) -> dict[str, Any]:
        """Thumbnail (a data URL, 128 px) and path of one dot, for the hover tip."""
        point_id, cluster = self._point(token, index)
        records = self.page.store.retrieve([point_id])
        if not records:
            return {"path": "(no longer in the collection)", "thumbnail": None}
        payload = records[0].payload
        try:
            thumbnail = self.page.images.cache.from_payload(point_id, payload, HOVER_SIDE).path
            data = base64.b64encode(thumbnail.read_bytes()).decode("ascii")
            url = f"data:image/jpeg;base64,{data}"
        except (ImageDecodeError, PointNotFoundError, OSError):
            url = None
        return {"path": str(payload.get(PAYLOAD_PATH, "")), "thumbnail": url,
                "cluster": self._title(cluster, cluster_names(self.page.settings))}

    def map_export(self, token: str, indices: list[int]) -> str:
        """CSV (id, path, cluster, x, y) of the selected dots."""
        points = self._snapshot(token)
        rows = sorted({int(i) for i in indices if 0 <= int(i) < len(points.ids)})
        ids = [points.ids[i] for i in rows]
        paths: dict[str, str] = {}
        for start in range(0, len(ids), 1024):
            for record in self.page.store.retrieve(ids[start : start + 1024]):
                paths[record.id] = str(record.payload.get(PAYLOAD_PATH, ""))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "path", "cluster", "map_x", "map_y"])
        for i, point_id in zip(rows, ids, strict=True):
            label = int(points.clusters[i])
            writer.writerow([point_id, paths.get(point_id, ""),
                             "" if label == UNLABELLED else label,
                             f"{points.xy[i, 0]:.5f}", f"{points.xy[i, 1]:.5f}"])
        return out.getvalue()

    # -- Gradio event ----------------------------------------------------------------

    def search_from_dot(self, space: str, k: float, evt: gr.EventData) -> tuple[str, Any]:
        """A click on a dot: search with that image's stored vectors."""
        data = evt._data or {}
        point_id, _cluster = self._point(str(data.get("token", "")), int(data.get("index", -1)))
        _query, gallery, *_ = self.page.search_by_id(point_id, space, k, None)
        records = self.page.store.retrieve([point_id])
        path = records[0].payload.get(PAYLOAD_PATH, point_id) if records else point_id
        return f"Most similar to **{path}** (clicked on the map)", gallery

    # -- helpers ---------------------------------------------------------------------

    def _keep(self, points: MapPoints) -> str:
        token = f"{len(points.ids)}-{abs(hash(tuple(points.ids[:3]))) % 10**8}-{id(points)}"
        with self._lock:
            self._snapshots[token] = points
            while len(self._snapshots) > KEPT_SNAPSHOTS:
                self._snapshots.popitem(last=False)
        return token

    def _snapshot(self, token: str) -> MapPoints:
        with self._lock:
            points = self._snapshots.get(token)
        if points is None:
            raise gr.Error("The map was reloaded elsewhere: press Reload on the map.")
        return points

    def _point(self, token: str, index: int) -> tuple[str, int]:
        points = self._snapshot(token)
        if not 0 <= index < len(points.ids):
            raise gr.Error(f"no dot {index} on this map")
        return points.ids[index], int(points.clusters[index])

    def _legend(self, clusters: np.ndarray) -> list[dict[str, Any]]:
        sizes = Counter(int(c) for c in clusters)
        names = cluster_names(self.page.settings)
        order = sorted(sizes, key=lambda c: (c < 0, -sizes[c], -c if c < 0 else c))
        return [{"cluster": c, "title": self._title(c, names), "size": sizes[c]} for c in order]

    @staticmethod
    def _title(label: int, names: dict[int, str]) -> str:
        if label == UNLABELLED:
            return "Not clustered"
        if label < 0:
            return "Noise"
        return f"Cluster {label}" + (f" · {names[label]}" if label in names else "")


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _server_functions(view: MapView) -> list[Any]:
    """Plain functions (Gradio marks them, which a bound method refuses) named as the
    script calls them. Gradio hands each one argument: the script's arguments as a list
    (a single argument as itself)."""

    def map_data(reload: Any) -> dict[str, Any]:
        return view.map_data(reload is True)

    def map_point(args: list[Any]) -> dict[str, Any]:
        token, index = args
        return view.map_point(str(token), int(index))

    def map_export(args: list[Any]) -> str:
        token, indices = args
        return view.map_export(str(token), list(indices))

    return [map_data, map_point, map_export]


def map_tab(page: Any) -> MapView:
    """Build the Map tab's components and events inside the current ``gr.Tab``."""
    view = MapView(page)
    gr.Markdown("Every image is a dot, placed by `simimg-admin map` so that similar images lie "
                "close together and coloured by cluster. Wheel to zoom, drag to pan, hover for "
                "the image, click a dot to search with it; Box or Lasso selects (shift adds), "
                "and the selection can be exported.")
    scatter = gr.HTML(
        "", html_template='<div class="simimg-map"></div>', css_template=CSS,
        js_on_load=SCRIPT, elem_id="map", apply_default_css=False,
        server_functions=_server_functions(view),
    )
    with gr.Row():
        space = gr.Radio(SPACE_CHOICES, value=VECTOR_MOBILENET, label="Search in",
                         elem_id="map-space", scale=2)
        k = gr.Number(12, label="k", precision=0, minimum=1, maximum=100, elem_id="map-k",
                      scale=1)
    query = gr.Markdown("Click a dot to find the images most similar to it.",
                        elem_id="map-query")
    gallery = gr.Gallery(label="Most similar to the clicked image", columns=6, format="jpeg",
                         object_fit="contain", height="auto", elem_id="map-results",
                         interactive=False)
    scatter.click(view.search_from_dot, [space, k], [query, gallery], api_name=False,
                  concurrency_id="search")
    return view
