"""What the tray shows of the engine: which icon, and the tooltip text (model, latency, levels,
current problems). Pure functions of an `EngineView`, the tray's read-only picture of the engine
(built from the EngineController's snapshot by `whamsah_tray.app.engine_link`).

Threads: pure; called on whichever thread refreshes the icon (engine observer or GUI thread).
"""

from __future__ import annotations

from dataclasses import dataclass

from whamsah_tray.app.icons import IconState
from whamsah_tray.engine.api import DEFAULT_LEVEL_PERCENT, EngineState

APP_TITLE = "WHAMSAH Tray"
# Windows limits a tray tooltip to 127 characters; other hosts show more. Keep lines short.
WINDOWS_TOOLTIP_LIMIT = 127


@dataclass(frozen=True)
class EngineView:
    """The engine as the tray draws it. Levels are percentages."""

    state: EngineState = EngineState.STOPPED
    vocals: int = DEFAULT_LEVEL_PERCENT
    instrumental: int = DEFAULT_LEVEL_PERCENT
    bypass: bool = False
    model: str = ""
    model_ready: bool = False  # False: audio passes through dry (weights missing / loading)
    model_problem: str | None = None  # e.g. "missing weights: ..." while running dry
    latency_ms: float | None = None
    extra_latency_ms: float = 0.0  # of which the engine added after the machine was too busy
    host_api: str = ""
    input_device: str = ""
    output_device: str = ""
    file: str | None = None
    paused: bool = False
    position_s: float = 0.0
    duration_s: float | None = None
    error: str | None = None
    idle: bool = False  # running, with no sound coming in: the engine rests
    key: int = 0  # semitones

    @property
    def vocals_muted(self) -> bool:
        return self.vocals == 0

    @property
    def playing_file(self) -> bool:
        return self.state is EngineState.PLAYING_FILE


def icon_state(view: EngineView) -> IconState:
    """The most important thing first: errors, then lost devices, then what the user chose."""
    if view.state is EngineState.ERROR:
        return IconState.ERROR
    if view.state is EngineState.DEVICE_LOST:
        return IconState.DEVICE_LOST
    if view.state in (EngineState.STOPPED, EngineState.STARTING):
        return IconState.STOPPED
    if view.bypass:
        return IconState.BYPASS
    if view.playing_file:
        return IconState.PLAYING_FILE
    if not view.model_ready:
        return IconState.DRY
    if view.vocals_muted:
        return IconState.VOCALS_MUTED
    return IconState.RUNNING


STATE_WORDS = {
    EngineState.STOPPED: "stopped",
    EngineState.STARTING: "starting…",
    EngineState.RUNNING: "running",
    EngineState.PLAYING_FILE: "playing a file",
    EngineState.DEVICE_LOST: "waiting for an audio device",
    EngineState.ERROR: "error",
}


def _file_line(view: EngineView) -> str:
    import os

    name = os.path.basename(view.file or "")
    where = _clock(view.position_s)
    if view.duration_s:
        where += f" / {_clock(view.duration_s)}"
    return f"{'Paused' if view.paused else 'Playing'} {name} ({where})"


def _clock(seconds: float) -> str:
    """m:ss (h:mm:ss from an hour on), as players show a position."""
    whole = int(max(0.0, seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def tooltip(view: EngineView, problems: list[str] = (), limitation: str | None = None) -> str:
    """Several short lines: state, levels, model and latency, then current problems."""
    head = f"{APP_TITLE}: {STATE_WORDS[view.state]}"
    if view.bypass:
        head += " (bypass)"
    elif view.state is EngineState.RUNNING and view.idle:
        head += " (idle: no sound coming in)"
    lines = [head]
    if view.playing_file and view.file:
        lines.append(_file_line(view))
    levels = f"Vocals {view.vocals} % · Instrumental {view.instrumental} %"
    if view.key:
        levels += f" · Key {'+' if view.key > 0 else '−'}{abs(view.key)}"
    lines.append(levels)
    model = view.model or "(default)"
    if view.model_ready:
        latency = f" · {view.latency_ms:.0f} ms" if view.latency_ms is not None else ""
        if latency and view.extra_latency_ms >= 1:
            latency += f" (+{view.extra_latency_ms:.0f}: busy machine)"
        lines.append(f"Model {model}{latency}")
    else:
        lines.append(f"Model {model}: not loaded, audio passes through")
    if view.error and view.error not in problems:
        lines.append(f"⚠ {view.error}")
    if view.model_problem and view.model_problem not in problems:
        lines.append(f"⚠ {view.model_problem}")
    lines += [f"⚠ {problem}" for problem in problems]
    if limitation:
        lines.append(limitation)
    return "\n".join(lines)


def short_tooltip(text: str, limit: int = WINDOWS_TOOLTIP_LIMIT) -> str:
    """Cut to `limit` characters at a line end when possible (Windows)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if "\n" in cut:
        cut = cut[: cut.rfind("\n")]
    return cut + "…"
