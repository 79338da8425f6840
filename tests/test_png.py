"""labkit.views.png: the PNGs the explorer's canvas sends decode (PIL) to exactly the pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from labkit.views.png import rgba_png


@pytest.mark.parametrize("height, width", [(1, 1), (3, 7), (500, 1000)])
def test_a_png_decodes_to_its_pixels(height: int, width: int) -> None:
    rng = np.random.default_rng(height * width)
    pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    pixels[: height // 2] = 0  # runs of one value, as in a diff image, and noise
    decoded = Image.open(io.BytesIO(rgba_png(pixels)))
    assert decoded.mode == "RGBA" and decoded.size == (width, height)
    assert np.array_equal(np.asarray(decoded), pixels)


def test_a_view_of_other_memory_is_written_as_its_pixels() -> None:
    whole = np.arange(6 * 8 * 4, dtype=np.uint8).reshape(6, 8, 4)
    part = whole[1:5, ::2]  # not contiguous
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(rgba_png(part)))), part)


@pytest.mark.parametrize("pixels, message", [
    (np.zeros((4, 4, 3), dtype=np.uint8), r"height x width x 4 uint8 array, got uint8 \(4, 4, 3\)"),
    (np.zeros((4, 4, 4), dtype=np.float64), "got float64"),
    (np.zeros((0, 4, 4), dtype=np.uint8), "at least one pixel, got 4 x 0"),
])  # fmt: skip
def test_what_is_not_rgba_bytes_is_refused(pixels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rgba_png(pixels)
