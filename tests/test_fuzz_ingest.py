"""Bad input at scale: mutated real images through the decoder and through a real ingest.

Hypothesis generates truncated, bit-flipped, header-swapped, zero-byte, garbage and
huge-dimension variants of real JPEG/PNG/GIF/WebP files, under right and wrong extensions,
odd and non-UTF-8 file names, symlinks (good, broken, looping), FIFOs and folders named like
images. Properties: the decoder raises nothing but ``ImageDecodeError``; an ingest stores
every good image once and reports every bad file once, with a reason; nothing crashes.

``SIMIMG_FUZZ_EXAMPLES`` sets the examples per property (default 300 for the decoder and
a fifth of that, each a folder of up to 12 files, for ingest); ``SIMIMG_FUZZ_SEED`` picks a
random seed instead of the fixed CI sequence; ``SIMIMG_RELIABILITY_STATS`` names a JSON
Lines file that receives the case counts (see scripts/reliability.sh).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

from ingest.runner import FolderIngester
from service.errors import ImageDecodeError
from service.images import IMAGE_SUFFIXES, decode_image, sha256_hex
from service.pipeline import EmbeddingPipeline
from service.store.edge import EdgeStore
from service.store.schema import point_id_for
from service.walker import iter_image_files, relative_posix
from tests.conftest import make_settings, report_case_counts

EXAMPLES = int(os.environ.get("SIMIMG_FUZZ_EXAMPLES", "300"))
INGEST_EXAMPLES = max(10, EXAMPLES // 5)
_SEED = os.environ.get("SIMIMG_FUZZ_SEED")
STATS: dict[str, int] = {}


def _count(key: str, n: int = 1) -> None:
    STATS[key] = STATS.get(key, 0) + n


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings: a fixed sequence in CI, a random one when a seed is given."""
    configured = settings(
        max_examples=examples,
        deadline=None,
        derandomize=_SEED is None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
    )

    def apply(fn: Any) -> Any:
        fn = configured(fn)
        return seed(int(_SEED))(fn) if _SEED is not None else fn

    return apply


@pytest.fixture(scope="module", autouse=True)
def _write_stats() -> Iterator[None]:
    yield
    report_case_counts("fuzz", STATS)


# ----------------------------------------------------------------- real seed images


def _real_photo() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.chelsea()).resize((72, 48), Image.Resampling.LANCZOS)


def _encode(img: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _seeds() -> dict[str, bytes]:
    """Small encodings of one real photo in every format the issue names."""
    photo = _real_photo()
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return {
        "jpeg": _encode(photo, "JPEG", quality=85),
        "jpeg-progressive": _encode(photo, "JPEG", quality=80, progressive=True),
        "png": _encode(photo, "PNG"),
        "png-rgba": _encode(rgba, "PNG"),
        "png-palette": _encode(photo.convert("P"), "PNG"),
        "gif": _encode(photo.convert("P"), "GIF"),
        "gif-animated": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp": _encode(photo, "WEBP", quality=80),
        "webp-lossless-alpha": _encode(rgba, "WEBP", lossless=True),
    }


SEEDS = _seeds()
SEED_NAMES = sorted(SEEDS)
HEADER_BYTES = {"jpeg": 20, "png": 33, "gif": 13, "webp": 30}


def _family(name: str) -> str:
    return name.split("-")[0]


def _png_with_size(data: bytes, width: int, height: int) -> bytes:
    ihdr = bytearray(data[12:29])  # type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return data[:12] + bytes(ihdr) + crc + data[33:]


def _jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = out.find(marker)
        if at >= 0:
            out[at + 5 : at + 9] = struct.pack(">HH", min(height, 65535), min(width, 65535))
    return bytes(out)


def _gif_with_size(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    out[6:10] = struct.pack("<HH", min(width, 65535), min(height, 65535))
    at = out.find(b"\x2c", 13)  # first image descriptor
    if at >= 0:
        out[at + 5 : at + 9] = struct.pack("<HH", min(width, 65535), min(height, 65535))
    return bytes(out)


def _webp_with_size(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    if out[12:16] == b"VP8X":
        w, h = min(width, 1 << 24) - 1, min(height, 1 << 24) - 1
        out[24:30] = w.to_bytes(3, "little") + h.to_bytes(3, "little")
    elif out[12:16] == b"VP8L":
        bits = (min(width, 16384) - 1) | ((min(height, 16384) - 1) << 14)
        out[21:25] = (bits | (int.from_bytes(out[21:25], "little") & ~0xFFFFFFF)).to_bytes(
            4, "little"
        )
    return bytes(out)


_RESIZERS = {"png": _png_with_size, "jpeg": _jpeg_with_size, "gif": _gif_with_size,
             "webp": _webp_with_size}
HUGE_SIZES = [(65535, 65535), (100_000, 100_000), (1, 1_000_000), (1_000_000, 2),
              (20_000, 20_000), (7_100, 7_100), (16_000, 1)]


@dataclass(frozen=True)
class Case:
    """One generated file content and how it was made."""

    kind: str
    seed: str
    data: bytes


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A real seed image, intact or damaged in one of several ways."""
    name = draw(st.sampled_from(SEED_NAMES))
    data = SEEDS[name]
    kind = draw(st.sampled_from(
        ["intact"] * 4 + ["truncate", "bitflip", "header-swap", "zero", "huge-dims", "garbage",
         "splice", "header-only"]
    ))
    if kind == "truncate":
        data = data[: draw(st.integers(1, len(data) - 1))]
    elif kind == "bitflip":
        buf = bytearray(data)
        for at in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=16)):
            buf[at] ^= 1 << draw(st.integers(0, 7))
        data = bytes(buf)
    elif kind == "header-swap":
        other = SEEDS[draw(st.sampled_from(SEED_NAMES))]
        cut = HEADER_BYTES[_family(name)]
        data = other[: HEADER_BYTES[_family(name)]] + data[cut:]
    elif kind == "zero":
        data = b""
    elif kind == "huge-dims":
        width, height = draw(st.sampled_from(HUGE_SIZES))
        data = _RESIZERS[_family(name)](data, width, height)
    elif kind == "garbage":
        data = draw(st.binary(min_size=1, max_size=2048))
    elif kind == "splice":
        other = SEEDS[draw(st.sampled_from(SEED_NAMES))]
        data = data[: draw(st.integers(1, len(data)))] + other[draw(st.integers(0, len(other))):]
    elif kind == "header-only":
        data = data[: HEADER_BYTES[_family(name)]]
    return Case(kind, name, data)


# ----------------------------------------------------------------- decoder property


@fuzz_settings(EXAMPLES)
@given(case=cases())
def test_decoder_refuses_bad_bytes_with_a_reason_and_nothing_else(
    case: Case, mobilenet_pipeline: EmbeddingPipeline
) -> None:
    """decode + preprocess (the ingest/query path) either works or says why; never crashes."""
    _count("decoder_cases")
    _count(f"decoder_{case.kind}")
    try:
        prepared = mobilenet_pipeline.prepare(case.data, "fuzz.bin")
    except ImageDecodeError as exc:
        _count("decoder_refused")
        message = str(exc)
        assert message.startswith("fuzz.bin: ") and len(message) > len("fuzz.bin: ") + 3
        assert "\n" not in message
        if case.kind == "zero":
            assert "empty file" in message
        return
    _count("decoder_accepted")
    assert case.kind not in ("zero", "header-only")
    assert prepared.width > 0 and prepared.height > 0
    assert prepared.sha256 == sha256_hex(case.data)
    tensor = prepared.inputs["mobilenet"]
    assert tensor.shape == (3, 224, 224) and np.isfinite(tensor).all()
    if case.kind == "intact":
        assert prepared.format in ("JPEG", "PNG", "GIF", "WEBP")


@pytest.mark.parametrize("family", ["png", "jpeg", "gif", "webp"])
@pytest.mark.parametrize("size", HUGE_SIZES)
def test_huge_declared_dimensions_are_refused_before_decoding(
    family: str, size: tuple[int, int]
) -> None:
    """A header claiming billions of pixels is refused by the pixel limit or as corrupt."""
    _count("huge_dims_cases")
    name = "webp-lossless-alpha" if family == "webp" else family
    data = _RESIZERS[family](SEEDS[name], *size)
    try:
        decoded = decode_image(data, max_pixels=50_000_000, min_side=256, source="big")
    except ImageDecodeError as exc:
        if size[0] * size[1] > 50_000_000 and family in ("png", "gif"):
            assert "exceeds the limit" in str(exc)
        return
    # Only a header the codec ignores (e.g. a GIF screen size) may still decode: then the
    # picture is the real one, not a giant allocation.
    assert decoded.image.width * decoded.image.height <= 50_000_000


def test_extreme_aspect_ratio_is_cheap_and_embeds() -> None:
    """A 90-byte 1x40000 PNG used to be scaled to 256x10,240,000 pixels (MemoryError)."""
    data = _encode(Image.new("RGB", (1, 40_000), (200, 30, 30)), "PNG")
    decoded = decode_image(data, max_pixels=50_000_000, min_side=256, source="strip")
    assert (decoded.width, decoded.height) == (1, 40_000)
    assert decoded.image.size == (1, 64)


# ----------------------------------------------------------------- ingest property

_ODD_NAMES = ["plain", "with space", "ünïcødé-名前", "semi;colon'quote\"", "new\nline",
              "back\\slash", "percent%41"]
_NON_UTF8 = [b"caf\xe9", b"\xff\xfe", b"latin1-\xe0\xe9\xf6", b"mixed-\xc3\x28"]


@dataclass(frozen=True)
class Entry:
    """One directory entry the test creates: how, and under which name."""

    how: str  # file | symlink-good | symlink-broken | symlink-loop | fifo | dir-named-image
    case: Case
    name: bytes
    suffix: str
    subdir: bool


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    how = draw(st.sampled_from(
        ["file"] * 6 + ["symlink-good", "symlink-broken", "symlink-loop", "fifo",
                        "dir-named-image"]
    ))
    case = draw(cases())
    if draw(st.booleans()):
        name = draw(st.sampled_from(_NON_UTF8))
    else:
        name = draw(st.sampled_from(_ODD_NAMES)).encode()
    family = _family(case.seed)
    right = {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp"}[family]
    suffix = draw(st.sampled_from([right, right.upper(), *sorted(IMAGE_SUFFIXES)]))
    return Entry(how, case, name, suffix, draw(st.booleans()))


@pytest.fixture(scope="module")
def shared_store(
    tmp_path_factory: pytest.TempPathFactory, session_models_dir: Path
) -> Iterator[EdgeStore]:
    """One embedded store for every example: ids are content hashes, so examples compose."""
    store = EdgeStore(make_settings(tmp_path_factory.mktemp("fuzz-data"), session_models_dir))
    store.ensure_collection()
    yield store
    store.close()


def _build(root: Path, items: list[Entry]) -> dict[str, bytes | None]:
    """Create the entries; return {expected report path: content, None = must fail}."""
    expected: dict[str, bytes | None] = {}
    broot = os.fsencode(root)
    for index, item in enumerate(items):
        folder = os.path.join(broot, b"sub") if item.subdir else broot
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, item.name + b"-%d" % index + item.suffix.encode())
        if item.how == "file":
            with open(path, "wb") as fh:
                fh.write(item.case.data)
        elif item.how == "symlink-good":
            target = os.path.join(broot, b"target-%d.bin" % index)  # not an image name
            with open(target, "wb") as fh:
                fh.write(item.case.data)
            os.symlink(target, path)
        elif item.how == "symlink-broken":
            os.symlink(os.path.join(broot, b"missing-%d.jpg" % index), path)
        elif item.how == "symlink-loop":
            other = path + b".loop.jpg"
            os.symlink(other, path)
            os.symlink(path, other)
        elif item.how == "fifo":
            os.mkfifo(path)
        elif item.how == "dir-named-image":
            os.makedirs(path)
            continue  # a folder is walked into, not reported
        names = [path] + ([path + b".loop.jpg"] if item.how == "symlink-loop" else [])
        for name in names:
            relative = relative_posix(Path(os.fsdecode(name)), root)
            expected[relative] = _oracle_bytes(name)
    return expected


def _oracle_bytes(path: bytes) -> bytes | None:
    """The file's bytes if it is a readable regular file (after symlinks), else None."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


@fuzz_settings(INGEST_EXAMPLES)
@given(items=st.lists(entries(), min_size=1, max_size=12))
def test_ingest_stores_every_good_image_and_reports_every_bad_file_once(
    items: list[Entry], shared_store: EdgeStore, mobilenet_pipeline: EmbeddingPipeline
) -> None:
    _count("ingest_examples")
    with tempfile.TemporaryDirectory(prefix="simimg-fuzz-") as tmp:
        root = Path(tmp).resolve() / "root"
        root.mkdir()
        expected = _build(root, items)
        _count("ingest_files", len(expected))
        files = list(iter_image_files(root))
        walk_order = [relative_posix(path, root) for path in files]
        assert sorted(walk_order) == sorted(expected), "the walker finds every entry once"
        good: dict[str, str] = {}  # sha256 -> first path in walk order
        bad: set[str] = set()
        for relative in walk_order:
            data = expected[relative]
            try:
                if data is None:
                    raise ImageDecodeError("unreadable")
                mobilenet_pipeline.prepare(data, relative)
            except ImageDecodeError:
                bad.add(relative)
                continue
            good.setdefault(sha256_hex(data), relative)
        before = shared_store.existing_ids([point_id_for(s) for s in good])
        count_before = shared_store.count()

        report = FolderIngester(shared_store, mobilenet_pipeline).ingest(root, files)

        _count("ingest_good_files", len(expected) - len(bad))
        _count("ingest_bad_files", len(bad))
        assert report.found == len(expected)
        failed_paths = [path for path, _ in report.failed]
        assert sorted(failed_paths) == sorted(bad), "each bad file reported exactly once"
        assert all(reason.strip() for _, reason in report.failed)
        assert report.added + report.already_stored + report.duplicates + len(bad) == len(
            expected
        )
        new = {sha: path for sha, path in good.items() if point_id_for(sha) not in before}
        assert report.added == len(new)
        assert shared_store.count() == count_before + len(new)
        records = {r.id: r for r in shared_store.retrieve([point_id_for(s) for s in good])}
        assert len(records) == len(good), "every good image is stored"
        for sha, path in new.items():
            payload = records[point_id_for(sha)].payload
            assert payload["sha256"] == sha
            assert payload["path"] == path and payload["root"] == str(root)
            assert payload["file_size"] == len(expected[path] or b"")
        # The summary the CLI prints must be encodable: no lone surrogates anywhere.
        json.dumps(report.to_json(), ensure_ascii=False).encode("utf-8")



# ----------------------------------------------------------------- permissions (non-root)


_NOBODY_SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path
import numpy as np
from ingest.runner import FolderIngester
from ingest.sync import sync_roots
from service.walker import iter_image_files
from service.config import Settings
from service.embedders.base import l2_normalise
from service.errors import ImageDecodeError
from service.pipeline import EmbeddingPipeline, read_image_bytes
from service.store import open_store
from service.store.schema import MOBILENET_DIM, VECTOR_MOBILENET

class Tiny:  # stands in for MobileNet (whose export the unprivileged user cannot read)
    space, dim, model_id, min_side = VECTOR_MOBILENET, MOBILENET_DIM, "tiny", 8
    def preprocess(self, image):
        return np.asarray(image.convert("RGB").resize((8, 8)), np.float32).ravel()
    def embed(self, batch):
        return l2_normalise(np.tile(batch, (1, 7))[:, :MOBILENET_DIM] + 1e-3)

root = Path(sys.argv[1])
unlisted = []
files = list(iter_image_files(root, on_error=lambda folder, exc: unlisted.append(folder.name)))
results = {}
for path in files:
    try:
        read_image_bytes(path, 10**8)
        results[path.name] = "ok"
    except ImageDecodeError as exc:
        results[path.name] = str(exc)
# What the ingest command runs: the summary must name the unlistable folder too.
settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="simimg-perm-data-")))
store = open_store(settings)
try:
    report = sync_roots(FolderIngester(store, EmbeddingPipeline(settings, [Tiny()])), [root])
finally:
    store.close()
print(json.dumps({"results": results, "unlisted": unlisted, "failed": report.failed,
                  "added": report.added, "data_dir": str(settings.data_dir)}))
"""


@pytest.mark.skipif(os.geteuid() != 0 and shutil.which("setpriv") is None,
                    reason="needs root (to drop to nobody) or to already be unprivileged")
def test_unreadable_file_and_folder_are_reported_not_skipped() -> None:
    """As an unprivileged user: a 000 file is a named failure, a 000 folder reaches on_error
    and the ingest summary (``ingest.sync.sync_roots``) names both in ``failed``."""
    _count("permission_cases", 2)
    base = Path(tempfile.mkdtemp(prefix="simimg-perm-", dir="/tmp"))
    try:
        base.chmod(0o755)
        (base / "ok.png").write_bytes(SEEDS["png"])
        (base / "secret.jpg").write_bytes(SEEDS["jpeg"])
        (base / "secret.jpg").chmod(0o000)
        locked = base / "locked"
        locked.mkdir()
        (locked / "inside.jpg").write_bytes(SEEDS["jpeg"])
        locked.chmod(0o000)
        command = [sys.executable, "-c", _NOBODY_SCRIPT, str(base)]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parent.parent)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["results"]["ok.png"] == "ok"
        assert "Permission denied" in out["results"]["secret.jpg"]
        assert out["unlisted"] == ["locked"]
        failed = dict(out["failed"])
        assert sorted(failed) == ["locked", "secret.jpg"], "each reported once, by name"
        assert "Permission denied" in failed["secret.jpg"]
        assert "cannot list folder" in failed["locked"] and "Permission denied" in failed["locked"]
        assert out["added"] == 1
        shutil.rmtree(out["data_dir"], ignore_errors=True)
    finally:
        (base / "locked").chmod(0o755)
        shutil.rmtree(base)
