"""What this process changed in the sound server's routing, kept on disk until it is undone.

Routing all audio through WHAMSAH makes our cable the default sink and moves the playing apps
into it; a quit puts everything back (LinuxCable.close). A tray that is killed (SIGKILL, a crash,
a logout that does not wait) cannot: every app would then play into a cable nobody listens to,
and the user hears nothing. So each change is written here first, in the user's state folder,
and the next start of the engine puts back what a dead process left (`LinuxCable.recover`).

The file is JSON: {"pid": ..., "cable_created": bool, "previous_default": sink name or null,
"came_from": {sink input index: sink name}}. It is removed once nothing is left to undo. A
journal whose process is still alive (another running tray) is left alone.

Controller thread only (written on each routing change: a few times per user action).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


def default_path(cable: str = "whamsah_cable") -> Path:
    """One journal per cable name, in the user's state folder (Linux: ~/.local/state/whamsah-tray)."""
    from platformdirs import user_state_dir

    return Path(user_state_dir("whamsah-tray", appauthor=False)) / f"routing-{cable}.json"


@dataclass
class RoutingState:
    cable_created: bool = False
    previous_default: str | None = None  # the default sink we replaced with the cable
    came_from: dict[int, str] = field(default_factory=dict)  # apps we moved into the cable

    @property
    def empty(self) -> bool:
        return not (self.cable_created or self.previous_default or self.came_from)


class RoutingJournal:
    def __init__(self, path: Path | None = None, cable: str = "whamsah_cable") -> None:
        self.path = path or default_path(cable)

    def write(self, state: RoutingState) -> None:
        """Records state (atomically); removes the file when there is nothing to undo."""
        if state.empty:
            self.clear()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({
            "pid": os.getpid(), "started": _start_time(os.getpid()), "cable_created": state.cable_created,
            "previous_default": state.previous_default,
            "came_from": {str(index): sink for index, sink in state.came_from.items()}}))
        os.replace(temporary, self.path)

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def left_behind(self) -> RoutingState | None:
        """What a process that has died left to undo, or None (no journal, ours, a live one's, or
        unreadable: an unreadable journal is removed, there is nothing it could tell)."""
        try:
            data = json.loads(self.path.read_text())
            pid = int(data.get("pid", 0))
            started = data.get("started")
            state = RoutingState(bool(data.get("cable_created")), data.get("previous_default") or None,
                                 {int(index): str(sink) for index, sink in dict(data.get("came_from") or {}).items()})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, AttributeError):
            self.clear()
            return None
        if pid == os.getpid() or (_alive(pid) and _start_time(pid) == started):
            return None  # ours, or a tray still running (a reused process number starts later)
        return state


def _start_time(pid: int) -> int | None:
    """When the process started (Linux: clock ticks since boot), to tell it from a later process
    that got the same number; None where /proc does not say."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process of that number: not ours to judge
    return True
