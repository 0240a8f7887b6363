"""Tray icons drawn with Pillow, one per state the user must be able to tell apart at a glance:
running, vocals muted, bypass, playing a file, running dry (no model weights), device lost, error,
stopped. Each is a coloured rounded square with a white glyph, drawn at 4x and reduced with a box
filter so that edges stay crisp from 16 to 64 px (and larger for the .desktop entry).

`python -m whamsah_tray.app.icons [ASSETS_DIR]` writes the shipped PNG/ICO files into assets/; a test
checks that the shipped files are what this module draws.

Threads: pure functions, called from the tray's GUI thread (and at build time).
"""

from __future__ import annotations

import enum
import sys
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

SUPERSAMPLE = 4
ASSET_SIZES = (16, 22, 24, 32, 48, 64, 128, 256)
APP_ICON_NAME = "whamsah-tray"


class IconState(enum.Enum):
    RUNNING = "running"
    VOCALS_MUTED = "muted"
    BYPASS = "bypass"
    PLAYING_FILE = "playing"
    DRY = "dry"  # the engine passes audio through: model weights missing or not loaded yet
    DEVICE_LOST = "device-lost"
    ERROR = "error"
    STOPPED = "stopped"


# Background colours: distinct in hue *and* lightness so they also differ for colour-blind users.
BACKGROUND = {
    IconState.RUNNING: (22, 150, 120),       # teal
    IconState.VOCALS_MUTED: (120, 60, 170),  # purple
    IconState.BYPASS: (110, 116, 124),       # grey
    IconState.PLAYING_FILE: (30, 110, 210),  # blue
    IconState.DRY: (214, 140, 20),           # amber
    IconState.DEVICE_LOST: (200, 40, 40),    # red
    IconState.ERROR: (200, 40, 40),          # red
    IconState.STOPPED: (70, 74, 80),         # dark grey
}
WHITE = (255, 255, 255, 255)


def _draw_microphone(draw: ImageDraw.ImageDraw, s: float, *, slashed: bool, colour=WHITE,
                     background=None) -> None:
    """A microphone: capsule, cradle, stem and foot; `s` is the canvas size in pixels. The slash
    is cut out of the glyph with a wider `background` stroke so it stays readable at 16 px."""
    w = max(1, round(s * 0.085))  # stroke width: about 1.4 px at 16 px after reduction
    # Capsule
    draw.rounded_rectangle((s * 0.38, s * 0.16, s * 0.62, s * 0.56), radius=s * 0.12, fill=colour)
    # Cradle (lower half of an ellipse around the capsule)
    draw.arc((s * 0.27, s * 0.30, s * 0.73, s * 0.70), start=0, end=180, fill=colour, width=w)
    # Stem and foot
    draw.line((s * 0.5, s * 0.70, s * 0.5, s * 0.82), fill=colour, width=w)
    draw.line((s * 0.36, s * 0.83, s * 0.64, s * 0.83), fill=colour, width=w)
    if slashed:
        slash = (s * 0.20, s * 0.16, s * 0.80, s * 0.88)
        draw.line(slash, fill=background, width=round(w * 2.4))
        draw.line(slash, fill=colour, width=w)


def _draw_play(draw: ImageDraw.ImageDraw, s: float) -> None:
    draw.polygon([(s * 0.34, s * 0.22), (s * 0.34, s * 0.78), (s * 0.80, s * 0.50)], fill=WHITE)


def _draw_bypass(draw: ImageDraw.ImageDraw, s: float) -> None:
    """A straight arrow: the audio goes through untouched."""
    w = max(1, round(s * 0.11))
    draw.line((s * 0.18, s * 0.5, s * 0.66, s * 0.5), fill=WHITE, width=w)
    draw.polygon([(s * 0.58, s * 0.28), (s * 0.84, s * 0.5), (s * 0.58, s * 0.72)], fill=WHITE)


def _draw_exclamation(draw: ImageDraw.ImageDraw, s: float) -> None:
    draw.rounded_rectangle((s * 0.42, s * 0.16, s * 0.58, s * 0.62), radius=s * 0.06, fill=WHITE)
    draw.ellipse((s * 0.41, s * 0.70, s * 0.59, s * 0.88), fill=WHITE)


def _draw_cross(draw: ImageDraw.ImageDraw, s: float) -> None:
    w = max(1, round(s * 0.13))
    draw.line((s * 0.27, s * 0.27, s * 0.73, s * 0.73), fill=WHITE, width=w)
    draw.line((s * 0.73, s * 0.27, s * 0.27, s * 0.73), fill=WHITE, width=w)


def _draw_pause(draw: ImageDraw.ImageDraw, s: float) -> None:
    draw.rectangle((s * 0.30, s * 0.24, s * 0.43, s * 0.76), fill=WHITE)
    draw.rectangle((s * 0.57, s * 0.24, s * 0.70, s * 0.76), fill=WHITE)


@lru_cache(maxsize=64)
def draw_icon(state: IconState, size: int = 64) -> Image.Image:
    """The RGBA icon for `state`, `size` x `size` pixels. Cached: callers must not modify it."""
    if size < 8:
        raise ValueError(f"icon size {size} is too small (at least 8 px)")
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    # A 1/16 margin keeps the square off the tray's edge; corners rounded like most tray icons.
    margin = big / 16
    draw.rounded_rectangle((margin, margin, big - margin, big - margin), radius=big * 0.2,
                           fill=BACKGROUND[state] + (255,))
    if state is IconState.RUNNING:
        _draw_microphone(draw, big, slashed=False)
    elif state is IconState.VOCALS_MUTED:
        _draw_microphone(draw, big, slashed=True, background=BACKGROUND[state] + (255,))
    elif state is IconState.BYPASS:
        _draw_bypass(draw, big)
    elif state is IconState.PLAYING_FILE:
        _draw_play(draw, big)
    elif state is IconState.DRY:
        _draw_microphone(draw, big, slashed=False, colour=(255, 240, 210, 255))  # pale: no model yet
    elif state is IconState.DEVICE_LOST:
        _draw_exclamation(draw, big)
    elif state is IconState.ERROR:
        _draw_cross(draw, big)
    elif state is IconState.STOPPED:
        _draw_pause(draw, big)
    return image.reduce(SUPERSAMPLE)


def asset_path(assets_dir: Path, state: IconState, size: int) -> Path:
    return Path(assets_dir) / "icons" / f"{APP_ICON_NAME}-{state.value}-{size}.png"


def write_assets(assets_dir: Path) -> list[Path]:
    """Write every state at every size, plus the app icon (PNG, ICO for Windows, ICNS for macOS)."""
    assets_dir = Path(assets_dir)
    (assets_dir / "icons").mkdir(parents=True, exist_ok=True)
    written = []
    for state in IconState:
        for size in ASSET_SIZES:
            path = asset_path(assets_dir, state, size)
            draw_icon(state, size).save(path, optimize=True)
            written.append(path)
    app_icon = draw_icon(IconState.RUNNING, 256)
    for name, fmt, extra in (
        (f"{APP_ICON_NAME}.png", "PNG", {"optimize": True}),
        (f"{APP_ICON_NAME}.ico", "ICO", {"sizes": [(s, s) for s in (16, 24, 32, 48, 64, 128, 256)]}),
        (f"{APP_ICON_NAME}.icns", "ICNS", {}),
    ):
        path = assets_dir / name
        app_icon.save(path, fmt, **extra)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "assets"
    for path in write_assets(target):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
