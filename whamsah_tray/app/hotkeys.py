"""Global hotkeys with pynput: each binding from the profile is parsed on its own, so an
unparsable or conflicting one is reported and skipped while the others still work.

pynput is imported lazily (it fails at import time without a display).

Threads: `HotkeyManager.start/stop` run on the tray's thread. The hotkey actions run on pynput's
listener thread (a daemon thread): they must return at once, so the actions the app passes only
send commands to the engine's queue and never wait for audio or I/O.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Callable, Mapping

log = logging.getLogger(__name__)

# What each profile key does, in the words the user sees in messages.
ACTION_LABELS = {
    "toggle_vocals": "toggle vocals",
    "vocals_up": "vocals up",
    "vocals_down": "vocals down",
    "instrumental_up": "instrumental up",
    "instrumental_down": "instrumental down",
    "bypass": "bypass",
    "key_up": "key up",
    "key_down": "key down",
    "play_file": "play file",
}


@dataclass(frozen=True)
class HotkeyProblem:
    action: str
    combination: str
    reason: str

    def message(self) -> str:
        label = ACTION_LABELS.get(self.action, self.action)
        return f"hotkey for {label} ({self.combination!r}) is not active: {self.reason}"


def canonical_keys(combination: str) -> frozenset:
    """The set of pynput keys of a combination; raises ValueError if it cannot be parsed."""
    from pynput import keyboard

    if not combination.strip():
        raise ValueError("empty")
    return frozenset(keyboard.HotKey.parse(combination))


def check_bindings(bindings: Mapping[str, str]) -> tuple[dict[str, str], list[HotkeyProblem]]:
    """Split `bindings` (action → combination) into the usable ones and the problems.

    An empty combination disables the action silently. Two actions on the same keys are a conflict:
    the first (in profile order) keeps them, the second is reported.
    """
    usable: dict[str, str] = {}
    problems: list[HotkeyProblem] = []
    taken: dict[frozenset, str] = {}
    for action, combination in bindings.items():
        if not combination:
            continue
        try:
            keys = canonical_keys(combination)
        except ValueError as error:
            problems.append(HotkeyProblem(action, combination, f"cannot parse it ({error or 'bad syntax'})"))
            continue
        if keys in taken:
            other = ACTION_LABELS.get(taken[keys], taken[keys])
            problems.append(HotkeyProblem(action, combination, f"the same keys are already used for {other}"))
            continue
        taken[keys] = action
        usable[action] = combination
    return usable, problems


def macos_may_watch_keys() -> bool:
    """macOS: whether this process is a trusted accessibility client, which a global keyboard
    listener needs (pynput itself only logs a warning when it is not). True when it cannot tell."""
    try:
        import HIServices  # pyobjc, installed with pynput on macOS

        return bool(HIServices.AXIsProcessTrusted())
    except Exception:  # noqa: BLE001 - no pyobjc or an old one: let pynput try
        return True


class HotkeyManager:
    """Owns one pynput GlobalHotKeys listener for all usable bindings."""

    def __init__(self, bindings: Mapping[str, str], actions: Mapping[str, Callable[[], None]]):
        self.bindings = dict(bindings)
        self.actions = dict(actions)
        self.active: dict[str, str] = {}
        self._listener = None

    def start(self) -> list[HotkeyProblem]:
        """Start listening; returns the problems (bindings that were skipped)."""
        usable, problems = check_bindings(
            {action: combo for action, combo in self.bindings.items() if action in self.actions}
        )
        for action in self.bindings:
            if action not in self.actions:
                problems.append(HotkeyProblem(action, self.bindings[action], "unknown action"))
        if not usable:
            return problems
        if sys.platform == "darwin" and not macos_may_watch_keys():
            # pynput would start, log a warning and never see a key.
            reason = ("macOS has not given this app Accessibility permission (System Settings → Privacy & "
                      "Security → Accessibility); allow it, then start the tray again")
            return problems + [HotkeyProblem(a, c, reason) for a, c in usable.items()]
        from pynput import keyboard

        handlers = {combo: self._guarded(action) for action, combo in usable.items()}
        try:
            listener = keyboard.GlobalHotKeys(handlers)
            listener.daemon = True  # stop() may wait for one more X event otherwise
            listener.start()
        except Exception as error:  # the platform refused the keyboard hook (e.g. Wayland, no XRecord)
            reason = f"the keyboard hook could not start ({error})"
            return problems + [HotkeyProblem(a, c, reason) for a, c in usable.items()]
        self._listener = listener
        self.active = usable
        return problems

    def _guarded(self, action: str) -> Callable[[], None]:
        function = self.actions[action]

        def run() -> None:
            try:
                function()
            except Exception:  # an exception would kill pynput's listener and every hotkey with it
                log.exception("hotkey action %s failed", action)

        return run

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        self.active = {}
        if listener is not None:
            listener.stop()
            # No join: after a hotkey fired, the X listener returns only on the next X event; it is
            # a daemon thread and holds nothing of ours.
