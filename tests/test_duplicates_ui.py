"""The Duplicates tab in headless Chromium (Debian's), driven like a user with Playwright.

A collection of two real photos with their edited copies and one exact copy is served
in-process; the browser scans, looks at a group, dismisses it and exports the list.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import ui  # noqa: F401  (disables Gradio analytics before gradio is imported)
from benchmarks.duplicates import EDITS, photo_sources, write_family
from ingest.runner import FolderIngester
from ingest.sync import sync_roots
from service.duplicates.dismissals import Dismissals
from service.pipeline import build_pipeline
from service.search import Searcher
from service.store import open_store
from tests.conftest import make_settings
from tests.processes import free_port
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium missing: apt-get install -y chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           session_models_dir: Path) -> Iterator[tuple[str, object]]:
    from ui.app import build_app, launch

    work = tmp_path_factory.mktemp("dups-ui")
    root = work / "photos"
    photos = photo_sources()
    for name in ("chelsea", "coffee"):
        write_family(root, name, photos[name], list(EDITS))
    shutil.copyfile(root / "coffee/original.jpg", root / "coffee_copy.jpg")
    settings = make_settings(work / "data", session_models_dir)
    store = open_store(settings)
    pipeline = build_pipeline(settings)
    sync_roots(FolderIngester(store, pipeline), [root])
    demo = build_app(Searcher(store, pipeline), settings)
    port = free_port()
    try:
        launch(demo, settings, port=port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}/", settings
    finally:
        demo.close()
        store.close()


def group_count(page: sync_api.Page) -> int:
    text = page.locator("#dups-summary").inner_text()
    return int(text.split(" groups")[0].strip("* "))


def test_scan_review_dismiss_and_export(served: tuple[str, object], tmp_path: Path) -> None:
    url, settings = served
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.get_by_role("tab", name="Duplicates").click()
            page.click("#dups-scan")
            page.locator("#dups-summary").get_by_text("groups").wait_for(state="visible")
            assert group_count(page) == 2
            # every group is a row of thumbnails, each with its suggested keeper marked
            page.wait_for_function(
                """() => {
                    const rows = document.querySelectorAll('.dups-row');
                    const imgs = document.querySelectorAll('.dups-row .grid-container img');
                    return rows.length == 2 && imgs.length >= 16
                        && [...imgs].every(i => i.complete && i.naturalWidth);
                }""")
            rows = page.locator(".dups-row")
            for index in range(2):
                captions = rows.nth(index).locator(".caption-label").all_inner_texts()
                assert sum(c.startswith("KEEP · ") for c in captions) == 1, captions
                assert len({"chelsea" in c for c in captions}) == 1  # one photo, not a mix
            assert "keep" in page.locator(".dups-heading").first.inner_text()

            with page.expect_download() as download_info:
                page.click("#dups-export")
                page.locator("#dups-file a").first.click()
            exported = tmp_path / "duplicates.csv"
            download_info.value.save_as(exported)
            with exported.open() as handle:
                rows = list(csv.DictReader(handle))
            assert {row["group"] for row in rows} == {"1", "2"}

            page.locator(".dups-dismiss").first.click()
            page.wait_for_function(
                "document.querySelector('#dups-summary').innerText.startsWith('1 groups')"
                " && document.querySelectorAll('.dups-row').length == 1")
        finally:
            browser.close()
    assert len(Dismissals.load(settings)) == 1  # stored in the data dir, not the browser
