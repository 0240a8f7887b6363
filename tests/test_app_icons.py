"""Tray icons: one distinct, crisp image per state at every tray size, and the shipped assets are
exactly what the code draws (regenerate with `python -m whamsah_tray.app.icons`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from whamsah_tray.app.icons import ASSET_SIZES, IconState, asset_path, draw_icon

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.mark.parametrize("size", [16, 22, 24, 32, 48, 64])
def test_every_state_differs_from_every_other_at_tray_sizes(size):
    images = {state: np.asarray(draw_icon(state, size), dtype=np.int16) for state in IconState}
    states = list(IconState)
    for i, a in enumerate(states):
        for b in states[i + 1:]:
            difference = np.abs(images[a] - images[b]).mean()
            assert difference > 4, f"{a.value} and {b.value} look the same at {size} px"


@pytest.mark.parametrize("state", list(IconState))
@pytest.mark.parametrize("size", [16, 32, 64])
def test_icons_are_crisp_opaque_squares_on_a_transparent_margin(state, size):
    image = draw_icon(state, size)
    assert image.size == (size, size) and image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3]
    assert alpha[0, 0] == 0  # corners are transparent
    centre = alpha[size // 4: 3 * size // 4, size // 4: 3 * size // 4]
    assert centre.min() == 255  # the body is fully opaque, no washed-out edges inside
    # Crisp: most pixels are either fully transparent or fully opaque.
    assert np.isin(alpha, (0, 255)).mean() > 0.8
    # A white glyph is present on the coloured square.
    rgb = np.asarray(image)[..., :3].astype(int)
    assert (rgb.min(axis=-1) > 200).sum() >= size * size * 0.04


def test_too_small_an_icon_is_refused():
    with pytest.raises(ValueError):
        draw_icon(IconState.RUNNING, 4)


def test_shipped_assets_match_the_drawing_code():
    missing = []
    for state in IconState:
        for size in ASSET_SIZES:
            path = asset_path(ASSETS, state, size)
            if not path.exists():
                missing.append(path.name)
                continue
            shipped = np.asarray(Image.open(path).convert("RGBA"))
            drawn = np.asarray(draw_icon(state, size))
            assert np.array_equal(shipped, drawn), f"{path.name} is stale: run python -m whamsah_tray.app.icons"
    assert not missing, f"missing assets: {missing}"
    for name in ("whamsah-tray.png", "whamsah-tray.ico", "whamsah-tray.icns"):
        assert (ASSETS / name).stat().st_size > 0
    app_icon = Image.open(ASSETS / "whamsah-tray.png")
    assert app_icon.size == (256, 256)
    assert (16, 16) in Image.open(ASSETS / "whamsah-tray.ico").info["sizes"]
