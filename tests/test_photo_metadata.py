"""Photo metadata at ingest, on real photos with EXIF written here: capture time, camera,
GPS, the file's mtime; photos without EXIF; hostile EXIF; old points filled in by sync."""

from __future__ import annotations

import io
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from benchmarks.sync import CountingEmbedder
from ingest.runner import FolderIngester
from ingest.sync import sync_roots
from service.config import Settings
from service.embedders.mobilenet import load_mobilenet
from service.exif import exif_metadata
from service.pipeline import EmbeddingPipeline
from service.store.base import VectorStore
from service.store.schema import (
    PAYLOAD_CAMERA,
    PAYLOAD_LOCATION_GPS,
    PAYLOAD_MODIFIED_AT,
    PAYLOAD_PATH,
    PAYLOAD_TAKEN_AT,
)
from service.walker import iter_image_files

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, DATETIME_ORIGINAL, OFFSET_ORIGINAL = 0x010F, 0x0110, 0x9003, 0x9011
METADATA_KEYS = (PAYLOAD_TAKEN_AT, PAYLOAD_CAMERA, PAYLOAD_LOCATION_GPS)


def make_exif(
    taken: Any = None, offset: Any = None, make: Any = None, model: Any = None,
    gps: tuple[Any, Any, Any, Any] | None = None,
) -> Image.Exif:
    """An EXIF block as a camera writes it (values of any type: tests pass wrong ones)."""
    exif = Image.Exif()
    if make is not None:
        exif[MAKE] = make
    if model is not None:
        exif[MODEL] = model
    if taken is not None:
        exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = taken
    if offset is not None:
        exif.get_ifd(EXIF_IFD)[OFFSET_ORIGINAL] = offset
    if gps is not None:
        lat_ref, lat, lon_ref, lon = gps
        exif.get_ifd(GPS_IFD).update({1: lat_ref, 2: lat, 3: lon_ref, 4: lon})
    return exif


def save_with_exif(source: Path, dest: Path, exif: Image.Exif | bytes) -> Path:
    """Re-encode a real photo as JPEG (or PNG, by ``dest``'s suffix: its EXIF chunk has no
    64 KiB limit) carrying ``exif`` (an Exif or raw block bytes)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        if dest.suffix == ".png":
            image.convert("RGB").save(dest, "PNG", exif=exif)
        else:
            image.convert("RGB").save(dest, "JPEG", quality=90, exif=exif)
    return dest


def payloads_by_path(store: VectorStore) -> dict[str, dict[str, Any]]:
    return {r.payload[PAYLOAD_PATH]: r.payload for page in store.scroll() for r in page}


def ingest(store: VectorStore, pipeline: EmbeddingPipeline, folder: Path):
    return FolderIngester(store, pipeline).ingest(folder, list(iter_image_files(folder)))


def test_capture_time_camera_and_gps_are_stored_and_never_invented(
    tmp_path: Path, store: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path,
) -> None:
    photos = sorted(imagenet_dir.glob("*.jpg"))
    folder = tmp_path / "library"
    save_with_exif(photos[0], folder / "berlin.jpg", make_exif(
        "2024:06:01 10:20:30", "+02:00", "Canon", "Canon EOS 5D",
        ("N", (52.0, 31.0, 12.0), "E", (13.0, 24.0, 36.0)),
    ))
    save_with_exif(photos[1], folder / "no_offset.jpg", make_exif(
        "2019:12:31 23:59:59", make="NIKON CORPORATION", model="NIKON D3",
        gps=("S", (33.0, 52.0, 4.0), "W", (70.0, 40.0, 0.0)),
    ))
    shutil.copyfile(photos[2], folder / "plain.jpg")  # the original has no EXIF at all
    mtime = 1_600_000_000
    os.utime(folder / "plain.jpg", (mtime, mtime))

    report = ingest(store, mobilenet_pipeline, folder)

    assert report.added == 3 and not report.failed
    stored = payloads_by_path(store)
    berlin, no_offset, plain = stored["berlin.jpg"], stored["no_offset.jpg"], stored["plain.jpg"]
    assert berlin[PAYLOAD_TAKEN_AT] == "2024-06-01T10:20:30+02:00"
    assert berlin[PAYLOAD_CAMERA] == "Canon EOS 5D"  # the make is not repeated
    assert berlin[PAYLOAD_LOCATION_GPS] == pytest.approx({"lat": 52.52, "lon": 13.41})
    assert no_offset[PAYLOAD_TAKEN_AT] == "2019-12-31T23:59:59Z"
    assert no_offset[PAYLOAD_CAMERA] == "NIKON CORPORATION NIKON D3"
    assert no_offset[PAYLOAD_LOCATION_GPS] == pytest.approx(
        {"lat": -(33 + 52 / 60 + 4 / 3600), "lon": -(70 + 40 / 60)})
    assert not any(key in plain for key in METADATA_KEYS)  # not guessed from the mtime
    assert plain[PAYLOAD_MODIFIED_AT] == "2020-09-13T12:26:40Z"
    assert all(PAYLOAD_MODIFIED_AT in p for p in stored.values())


def _truncated_block() -> bytes:
    """A TIFF header whose IFD claims 40 entries, then ends."""
    return b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + struct.pack("<H", 40) + b"\x0f\x01\x02"


def _pointer_to_nowhere() -> bytes:
    """IFD0 with an EXIF-IFD and a GPS-IFD pointer far past the end of the block."""
    entries = [(EXIF_IFD, 4, 1, 0x7FFFFFF0), (GPS_IFD, 4, 1, 0xFFFFFF00)]
    body = struct.pack("<H", len(entries))
    body += b"".join(struct.pack("<HHII", *entry) for entry in entries) + b"\x00" * 4
    return b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + body


Entry = tuple[int, int, int, bytes]  # tag, TIFF type, count, value bytes


def raw_exif(ifd0: list[Entry], exif_ifd: list[Entry], gps_ifd: list[Entry]) -> bytes:
    """An EXIF block written byte by byte (little-endian TIFF), so a tag can carry any type,
    which Pillow's writer would refuse."""
    def ifd(entries: list[Entry], start: int) -> bytes:
        data_at = start + 2 + 12 * len(entries) + 4
        table, data = struct.pack("<H", len(entries)), b""
        for tag, kind, count, value in entries:
            if len(value) <= 4:
                table += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
            else:
                table += struct.pack("<HHII", tag, kind, count, data_at + len(data))
                data += value + b"\0" * (len(value) % 2)
        return table + b"\0\0\0\0" + data

    def size(entries: list[Entry]) -> int:
        return len(ifd(entries, 0))

    pointers = [(EXIF_IFD, 4, 1, b""), (GPS_IFD, 4, 1, b"")]
    exif_at = 8 + size([*ifd0, *pointers])
    gps_at = exif_at + size(exif_ifd)
    pointers = [(EXIF_IFD, 4, 1, struct.pack("<I", exif_at)),
                (GPS_IFD, 4, 1, struct.pack("<I", gps_at))]
    return (b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd([*ifd0, *pointers], 8)
            + ifd(exif_ifd, exif_at) + ifd(gps_ifd, gps_at))


def _rationals(*values: tuple[int, int]) -> bytes:
    return b"".join(struct.pack("<II", n, d) for n, d in values)


WRONG_TYPES = raw_exif(
    ifd0=[(MAKE, 1, 3, b"\xff\xfe\x00"), (MODEL, 4, 1, struct.pack("<I", 7))],
    exif_ifd=[(DATETIME_ORIGINAL, 3, 1, struct.pack("<H", 2024)),
              (OFFSET_ORIGINAL, 5, 1, _rationals((7, 2)))],
    gps_ifd=[(1, 3, 1, struct.pack("<H", 5)), (2, 2, 6, b"north\0"),
             (3, 2, 2, b"E\0"), (4, 5, 2, _rationals((1, 1), (2, 1))),
             (6, 5, 1, _rationals((1, 0)))],
)

HOSTILE: dict[str, Image.Exif | bytes] = {
    "huge.png": make_exif(make="C" * 2_000_000, model="x" * 3000,
                          taken="2020:01:01 " + "9" * 400_000),
    "truncated.jpg": _truncated_block(),
    "dangling_pointers.jpg": _pointer_to_nowhere(),
    "wrong_types.jpg": WRONG_TYPES,
    "out_of_range.jpg": make_exif(taken="0000:00:00 00:00:00", offset="+99:99",
                                  gps=("N", (91.0, 0.0, 0.0), "E", (10.0, 75.0, 0.0))),
    "zero_denominators.jpg": raw_exif(
        [], [(DATETIME_ORIGINAL, 2, 20, b"2024:02:30 10:00:00\0")],  # 30 February
        [(1, 2, 2, b"N\0"), (2, 5, 3, _rationals((1, 0), (0, 0), (0, 0))),
         (3, 2, 2, b"E\0"), (4, 5, 3, _rationals((1, 1), (0, 1), (0, 1)))]),
}


def test_hostile_exif_never_fails_an_ingest(
    tmp_path: Path, store: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path,
) -> None:
    photos = sorted(imagenet_dir.glob("*.jpg"))
    folder = tmp_path / "hostile"
    for (name, block), photo in zip(HOSTILE.items(), photos, strict=False):
        save_with_exif(photo, folder / name, block)
    # A valid field beside junk ones survives: only the junk is dropped.
    save_with_exif(photos[10], folder / "mixed.jpg",
                   make_exif(taken="2021:03:04 05:06:07", make="\x01\x02",
                             gps=("N", (95.0, 0.0, 0.0), "E", (1.0, 2.0, 3.0))))

    report = ingest(store, mobilenet_pipeline, folder)

    assert report.failed == [] and report.added == len(HOSTILE) + 1
    stored = payloads_by_path(store)
    for name in HOSTILE:
        assert not any(key in stored[name] for key in METADATA_KEYS), name
        assert PAYLOAD_MODIFIED_AT in stored[name]
    assert stored["mixed.jpg"][PAYLOAD_TAKEN_AT] == "2021-03-04T05:06:07Z"
    assert PAYLOAD_CAMERA not in stored["mixed.jpg"]
    assert PAYLOAD_LOCATION_GPS not in stored["mixed.jpg"]


def test_exif_of_a_png_and_an_empty_block() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "PNG", exif=make_exif(make="Apple", model="iPhone"))
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        assert exif_metadata(image.getexif()) == {PAYLOAD_CAMERA: "Apple iPhone"}
    assert exif_metadata(None) == {} and exif_metadata(Image.Exif()) == {}


def test_sync_fills_in_metadata_of_old_points_without_embedding(
    tmp_path: Path, settings: Settings, store: VectorStore, session_models_dir: Path,
    imagenet_dir: Path,
) -> None:
    photos = sorted(imagenet_dir.glob("*.jpg"))[:4]
    folder = tmp_path / "old"
    save_with_exif(photos[0], folder / "dated.jpg",
                   make_exif("2018:08:08 08:08:08", make="FUJIFILM", model="X-T3"))
    for photo in photos[1:]:
        shutil.copyfile(photo, folder / photo.name)
    embedder = CountingEmbedder(load_mobilenet(settings))
    ingester = FolderIngester(store, EmbeddingPipeline(settings, [embedder]))
    assert sync_roots(ingester, [folder]).added == 4
    assert embedder.embedded == 4
    ids = [r.id for page in store.scroll() for r in page]
    for key in (*METADATA_KEYS, PAYLOAD_MODIFIED_AT):  # as a schema-3 collection stored them
        store.delete_payload_key(key, ids)

    report = sync_roots(ingester, [folder])

    assert embedder.embedded == 4  # metadata read from the files, nothing embedded again
    assert report.added == 0 and report.unchanged == 0 and not report.failed
    stored = payloads_by_path(store)
    assert stored["dated.jpg"][PAYLOAD_TAKEN_AT] == "2018-08-08T08:08:08Z"
    assert stored["dated.jpg"][PAYLOAD_CAMERA] == "FUJIFILM X-T3"
    assert all(PAYLOAD_MODIFIED_AT in p for p in stored.values())
    again = sync_roots(ingester, [folder])
    assert again.unchanged == 4 and embedder.embedded == 4  # filled in once, then by stat
