"""The search page in headless Chromium (Debian's), driven like a user with Playwright.

Uses the ``served`` collection of :mod:`tests.test_ui_api`: 20 real ImageNet photos,
clusters 0 (8 images), 1 (7) and noise (5). The browser may reach only the app itself.
Set ``SIMIMG_UPDATE_SCREENSHOT=1`` to refresh ``docs/ui-search.png``, ``docs/map-tab.png``
and ``docs/clusters-tab.png`` from this run.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.test_ui_api import Served, served  # noqa: F401  (module fixture, shared)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "ui-search.png"
CAPTION = re.compile(r"^\d\.\d{4} · \S+\.(jpg|png)")
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian chromium missing: apt-get install -y chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def page(served: Served) -> Iterator[sync_api.Page]:  # noqa: F811
    """A fresh page on the app; every request to anywhere else is refused and recorded."""
    outside: list[str] = []

    def route(request_route: sync_api.Route) -> None:
        if request_route.request.url.startswith(served.url):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(TIMEOUT_MS)
            tab.route("**/*", route)
            tab.goto(served.url)
            tab.wait_for_selector("#query input[type=file]", state="attached")
            yield tab
        finally:
            browser.close()
    assert not outside, f"the page tried to reach {outside}"


def captions(page: sync_api.Page) -> list[str]:
    return page.locator("#results .caption-label").all_inner_texts()


def wait_for_results(page: sync_api.Page, expected: int, contains: str = "") -> list[str]:
    """Wait until the gallery shows ``expected`` captioned images, all containing ``contains``."""
    page.wait_for_function(
        """([n, text]) => {
            const caps = [...document.querySelectorAll('#results .caption-label')];
            const imgs = document.querySelectorAll('#results .grid-container img');
            return caps.length === n && imgs.length === n
                && caps.every(c => c.innerText.includes(text))
                && [...imgs].every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=[expected, contains],
    )
    return captions(page)


def test_upload_search_filter_by_cluster_and_refuse_a_non_image(
    page: sync_api.Page, served: Served, tmp_path: Path  # noqa: F811
) -> None:
    original = served.files["imagenet_17_22.jpg"]
    edited = tmp_path / "edited-copy.jpg"  # cropped, shrunk, re-encoded: not in the collection
    with Image.open(original) as photo:
        width, height = photo.size
        photo.convert("RGB").crop((width // 10, height // 10, width * 9 // 10, height * 9 // 10)
                                  ).resize((width // 2, height // 2)).save(edited, quality=70)
    page.fill("#k input", "6")
    page.locator("#query input[type=file]").set_input_files(str(edited))
    found = wait_for_results(page, 6)
    assert all(CAPTION.match(text) for text in found), found
    assert found[0].split(" · ")[1] == original.name  # the original photo comes first
    scores = [float(text.split(" · ")[0]) for text in found]
    assert scores == sorted(scores, reverse=True)
    shot = tmp_path / "ui-search.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("SIMIMG_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, SCREENSHOT)

    page.click("#cluster-filter input")
    page.get_by_role("option", name="Cluster 1 (7 images)").click()
    page.click("#search-button")
    in_cluster = wait_for_results(page, 6, "cluster 1")
    names = {text.split(" · ")[1] for text in in_cluster}
    assert names <= {name for name, label in served.labels.items() if label == 1}

    page.locator("#query input[type=file]").set_input_files(
        {"name": "notes.png", "mimeType": "image/png", "buffer": b"this is not an image"}
    )
    page.get_by_text("not a recognised image").first.wait_for(state="visible")
    assert captions(page) == in_cluster  # the page keeps its last results and keeps working


def test_clusters_tab_cards_open_and_a_name_reaches_search_results(
    page: sync_api.Page, served: Served, tmp_path: Path  # noqa: F811
) -> None:
    page.get_by_role("tab", name="Clusters").click()
    cards = page.locator("#cluster-cards .cluster-card")
    cards.first.wait_for(state="visible")
    assert cards.count() == 3  # clusters 0 and 1, and the noise card
    # Every card shows its size and a strip of its most representative images, all loaded.
    page.wait_for_function(
        """() => {
            const strips = [...document.querySelectorAll('#cluster-cards .cluster-card')];
            const imgs = strips.map(c => [...c.querySelectorAll('img')]);
            return JSON.stringify(imgs.map(i => i.length)) === '[6,6,5]'
                && imgs.flat().every(i => i.complete && i.naturalWidth > 0);
        }"""
    )  # six per card at most: the noise card has all of its five
    titles = page.locator("#cluster-cards .cluster-card h4").all_inner_texts()
    assert "8 images" in titles[0] and "Cluster 0" in titles[0]
    assert "7 images" in titles[1] and "Noise" in titles[2] and "5 images" in titles[2]
    page.get_by_text("Run details").wait_for(state="visible")  # folded away
    assert not page.locator("#clusters-summary").is_visible()

    page.locator("#cluster-cards .cluster-card[data-cluster='1']").click()
    page.wait_for_function(
        "document.querySelectorAll('#cluster-grid .grid-container img').length === 7"
    )
    shown = set(page.locator("#cluster-grid .caption-label").all_inner_texts())
    assert shown == {name for name, label in served.labels.items() if label == 1}
    page.fill("#cluster-name textarea", "things with wheels")
    page.click("#cluster-name-save")
    page.locator("#cluster-cards h4").get_by_text("Cluster 1 · things with wheels").wait_for()
    if os.environ.get("SIMIMG_UPDATE_SCREENSHOT"):
        page.screenshot(path=str(SCREENSHOT.with_name("clusters-tab.png")), full_page=True)

    # The name shows in search results, and works as the filter (typed instead of a number).
    page.get_by_role("tab", name="Search").click()
    page.fill("#cluster-filter input", "things with wheels")
    page.keyboard.press("Enter")
    page.fill("#k input", "3")
    page.locator("#query input[type=file]").set_input_files(str(served.files["chelsea.png"]))
    found = wait_for_results(page, 3, "cluster 1 (things with wheels)")
    assert {t.split(" · ")[1] for t in found} <= set(
        name for name, label in served.labels.items() if label == 1)

    page.get_by_role("tab", name="Map").click()  # the opened cluster is the map's filter
    page.wait_for_function("document.querySelector('#map .simimg-map')?.dataset.filter === '1'")
    page.locator("#map .map-status").get_by_text("showing Cluster 1 · things with wheels"
                                                  ).wait_for()

    page.get_by_role("tab", name="Status").click()
    status = page.locator("#status")
    status.get_by_text("images: 20").wait_for(state="visible")
    assert "mobilenet model" in status.inner_text()


def test_thumbs_up_and_down_then_search_again_and_the_min_score_slider(
    page: sync_api.Page, served: Served  # noqa: F811
) -> None:
    page.fill("#k input", "6")
    page.locator("#query input[type=file]").set_input_files(
        str(served.files["imagenet_00_243.jpg"]))
    first = wait_for_results(page, 6)
    names = [text.split(" · ")[1] for text in first]
    tiles = page.locator("#results .grid-container button")
    # Like and Unlike pressed straight after each click, as a quick person does: each takes
    # the tile clicked just before it (the click is ordered before the press on the server).
    tiles.nth(1).click()
    page.click("#like-button")
    page.wait_for_function("document.querySelectorAll('#liked img').length === 1")
    page.locator("#results").get_by_label("Close").click()  # the clicked tile's preview
    tiles.nth(2).click()
    page.click("#unlike-button")
    page.wait_for_function("document.querySelectorAll('#liked img').length === 1"
                           " && document.querySelectorAll('#unliked img').length === 1")
    page.click("#search-again")
    page.wait_for_function(
        """([a, b]) => {
            const caps = [...document.querySelectorAll('#results .caption-label')]
                .map(c => c.innerText);
            return caps.length === 6 && !caps.some(c => c.includes(a) || c.includes(b));
        }""", arg=[f" · {names[1]}", f" · {names[2]}"])
    again = captions(page)
    assert again[0].split(" · ")[1] == names[0]  # the query image is still a positive example
    assert again != first

    scores = [float(text.split(" · ")[0]) for text in again]
    floor = round((scores[2] + scores[3]) / 2, 2)
    expected = sum(score >= floor for score in scores)
    slider = page.locator("#min-score input[type=number]")
    slider.fill(str(floor))
    slider.press("Enter")
    page.click("#search-again")
    cut = wait_for_results(page, expected)
    assert all(float(text.split(" · ")[0]) >= floor for text in cut)
    page.click("#clear-feedback")
    page.wait_for_function("document.querySelectorAll('#liked img').length === 0")
def test_map_tab_draws_every_dot_hovers_searches_and_exports(
    page: sync_api.Page, served: Served, tmp_path: Path  # noqa: F811
) -> None:
    page.get_by_role("tab", name="Map").click()
    page.wait_for_function("document.querySelector('#map .simimg-map')?.dataset.drawn === '20'")
    hook = "document.querySelector('#map .simimg-map').simimgMap"
    assert page.evaluate(f"{hook}.dots()") == 20
    # Dots are pixels of one canvas, in the colours of their clusters (no element per dot).
    assert page.locator("#map canvas").count() == 2
    x, y = page.evaluate(f"{hook}.pagePosition(4)")
    page.mouse.move(x, y)
    page.wait_for_selector("#map .map-tip:not([hidden])")
    page.wait_for_function("document.querySelector('#map .map-tip img').naturalWidth > 0")
    hovered = page.locator("#map .map-tip-text").inner_text().split(" · ")[0]
    assert hovered in served.labels
    if os.environ.get("SIMIMG_UPDATE_SCREENSHOT"):
        page.screenshot(path=str(SCREENSHOT.with_name("map-tab.png")), full_page=False)

    page.mouse.click(x, y)  # a click searches with that image
    page.wait_for_function(
        "document.querySelectorAll('#map-results .grid-container img').length === 12")
    first = page.locator("#map-results .caption-label").first.inner_text()
    assert first.startswith(f"1.0000 · {hovered}")
    page.locator("#map-query").get_by_text(hovered).wait_for()

    # A box over the whole canvas selects every dot; the export lists them all.
    page.click("#map button[data-mode=box]")
    box = page.locator("#map canvas.map-canvas").bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=4)
    page.mouse.up()
    page.locator("#map .map-status").get_by_text("20 selected").wait_for()
    with page.expect_download() as download:
        page.click("#map .map-export")
    rows = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    assert sorted(r["path"] for r in rows) == sorted(served.labels)
    assert {r["path"]: int(r["cluster"]) for r in rows} == served.labels
