"""Photo metadata from the EXIF block the decoder already parsed: when, which camera, where.

Nothing here decodes pixels: :func:`exif_metadata` reads a PIL ``Image.Exif`` (parsed from
the file's header while decoding, see :mod:`service.images`), :func:`metadata_from_bytes`
opens a file's header only (for contents already stored, whose pixels are not needed).

EXIF is whatever the file says: every field is checked for type and range and dropped when
it does not make sense, and no error of a broken or hostile block ever leaves this module,
so metadata can never fail an ingest. A photo without a capture time has no ``taken_at``:
it is never guessed from the file's modification time (that is ``modified_at``).
"""

from __future__ import annotations

import io
import math
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import Image

from service.store.schema import (
    PAYLOAD_CAMERA,
    PAYLOAD_LOCATION_GPS,
    PAYLOAD_MODIFIED_AT,
    PAYLOAD_TAKEN_AT,
)

# EXIF tag numbers (EXIF 2.32 / TIFF 6.0).
_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_MAKE = 0x010F
_MODEL = 0x0110
_DATETIME = 0x0132  # IFD0: last change, the fallback when the camera wrote no original time
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_OFFSET_TIME_ORIGINAL = 0x9011
_OFFSET_TIME_DIGITIZED = 0x9012
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4

_MAX_TEXT = 64  # longest Make / Model kept (the real ones are far shorter)
_YEARS = range(1826, 2200)  # the first photograph .. far future: anything else is junk


def exif_of(image: Image.Image) -> Image.Exif | None:
    """The image's parsed EXIF block, or None when it has none or it cannot be parsed."""
    try:
        exif = image.getexif()
    except Exception:  # a broken block must not sink an otherwise good image
        return None
    return exif if len(exif) else None


def metadata_from_bytes(data: bytes) -> dict[str, Any]:
    """:func:`exif_metadata` of an encoded file, reading its header only (no pixel decode)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return exif_metadata(exif_of(image))
    except Exception:
        return {}


def exif_metadata(exif: Image.Exif | None) -> dict[str, Any]:
    """``taken_at``, ``camera`` and ``location_gps`` payload keys, each only when valid."""
    if exif is None:
        return {}
    found: dict[str, Any] = {}
    for key, read in ((PAYLOAD_TAKEN_AT, _taken_at), (PAYLOAD_CAMERA, _camera),
                      (PAYLOAD_LOCATION_GPS, _gps)):
        try:
            value = read(exif)
        except Exception:  # any field of a hostile block: drop the field, keep the rest
            value = None
        if value is not None:
            found[key] = value
    return found


def modified_at(mtime_ns: int | None) -> dict[str, Any]:
    """The ``modified_at`` payload key for a file's mtime (none when unknown)."""
    if mtime_ns is None:
        return {}
    try:
        when = datetime.fromtimestamp(mtime_ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return {}
    return {PAYLOAD_MODIFIED_AT: when.isoformat(timespec="seconds").replace("+00:00", "Z")}


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        ifd = exif.get_ifd(tag)
    except Exception:
        return {}
    return ifd if isinstance(ifd, dict) else {}


def _taken_at(exif: Image.Exif) -> str | None:
    """RFC 3339 capture time: with the camera's UTC offset when it wrote one, else "Z".

    Cameras record local wall-clock time; without an offset tag the true instant is
    unknown, so the wall-clock time is stored as if it were UTC (a date filter then works
    on the calendar date the photo shows).
    """
    sub = _ifd(exif, _IFD_EXIF)
    for tag, offset_tag, ifd in ((_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL, sub),
                                 (_DATETIME_DIGITIZED, _OFFSET_TIME_DIGITIZED, sub),
                                 (_DATETIME, None, exif)):
        when = _parse_exif_datetime(ifd.get(tag))
        if when is None:
            continue
        offset = _parse_offset(sub.get(offset_tag)) if offset_tag else None
        when = when.replace(tzinfo=offset or UTC)
        return when.isoformat(timespec="seconds").replace("+00:00", "Z")
    return None


def _parse_exif_datetime(raw: object) -> datetime | None:
    """``"YYYY:MM:DD HH:MM:SS"`` (also with ``-`` or ``T``); None for blanks and junk."""
    text = _text(raw, 40)
    if text is None or len(text) < 19:
        return None
    text = text[:19]
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            when = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return when if when.year in _YEARS else None
    return None


def _parse_offset(raw: object) -> timezone | None:
    """``"+02:00"`` -> UTC+2; None when absent or malformed."""
    text = _text(raw, 8)
    if text is None or len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return None
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    if hours > 14 or minutes >= 60:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def _camera(exif: Image.Exif) -> str | None:
    """``"Make Model"``, without repeating the make when the model already starts with it."""
    make, model = _text(exif.get(_MAKE), _MAX_TEXT), _text(exif.get(_MODEL), _MAX_TEXT)
    if make and model and model.lower().startswith(make.lower()):
        return model
    joined = " ".join(part for part in (make, model) if part)
    return joined or None


def _text(raw: object, limit: int) -> str | None:
    """A short printable string from an EXIF ASCII value (NULs and padding stripped)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(raw, str):
        return None
    text = " ".join(raw.replace("\x00", " ").split())
    if not text or len(text) > limit or not text.isprintable():
        return None
    return text


def _gps(exif: Image.Exif) -> dict[str, float] | None:
    """``{"lat", "lon"}`` in degrees; None when missing, malformed or out of range."""
    gps = _ifd(exif, _IFD_GPS)
    if not gps:
        return None
    lat = _degrees(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "NS", 90.0)
    lon = _degrees(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "EW", 180.0)
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        return None  # 0,0 is what receivers without a fix write
    return {"lat": round(lat, 7), "lon": round(lon, 7)}


def _degrees(dms: object, ref: object, refs: str, limit: float) -> float | None:
    if not isinstance(dms, tuple | list) or len(dms) != 3:
        return None
    parts = [float(part) for part in dms]  # IFDRational / int / float; junk raises
    if not all(math.isfinite(p) and p >= 0 for p in parts) or parts[1] >= 60 or parts[2] >= 60:
        return None
    value = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0
    ref_text = _text(ref, 2)
    if ref_text is None or ref_text.upper() not in refs or value > limit:
        return None
    return -value if ref_text.upper() == refs[1] else value
