"""Driving the real tray icon on the test desktop the way a user does: find where it docked, take a
screenshot of it, right-click it, walk its GTK menu with the keyboard (xdotool), and wait for
conditions. Used by tests/test_app_tray*.py and bench/bench_tray.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

import numpy as np

ICON_NAME_PREFIX = "WHAMSAH Tray:"  # the icon's X window is named after its tooltip ("WHAMSAH Tray: running…")


def xdotool(*args: str, timeout: float = 20, check: bool = True) -> str:
    done = subprocess.run(["xdotool", *args], capture_output=True, text=True, errors="replace",
                          timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"xdotool {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@dataclass(frozen=True)
class Geometry:
    x: int
    y: int
    width: int
    height: int

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2


def icon_windows() -> list[str]:
    out = xdotool("search", "--onlyvisible", "--name", f"^{ICON_NAME_PREFIX}", check=False)
    return out.split()


def window_geometry(window: str) -> Geometry:
    values = dict(line.split("=", 1) for line in xdotool("getwindowgeometry", "--shell", window).split())
    return Geometry(int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"]))


def docked_icon_window(timeout: float = 10.0) -> tuple[str, Geometry] | None:
    """The tray icon's X window and where it is, once docked (a small window in the tray's panel)."""
    def find():
        for window in icon_windows():
            try:
                g = window_geometry(window)
            except RuntimeError:
                continue
            if 8 <= g.width <= 64 and 8 <= g.height <= 64 and g.x >= 0 and g.y >= 0:
                return window, g
        return None

    return wait_until(find, timeout)


def docked_icon(timeout: float = 10.0) -> Geometry | None:
    found = docked_icon_window(timeout)
    return found[1] if found else None


def icon_title(timeout: float = 1.0) -> str:
    """The docked icon's window name: pystray's title, i.e. the tooltip text."""
    found = docked_icon_window(timeout)
    return xdotool("getwindowname", found[0]).strip() if found else ""


def screenshot(g: Geometry) -> np.ndarray:
    from PIL import ImageGrab

    image = ImageGrab.grab(bbox=(g.x, g.y, g.x + g.width, g.y + g.height), xdisplay=os.environ["DISPLAY"])
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def colour_share(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 24) -> float:
    """Fraction of pixels within `tolerance` of `colour` (per channel)."""
    close = np.all(np.abs(pixels - np.array(colour, dtype=np.int16)) <= tolerance, axis=-1)
    return float(close.mean())


def right_click(g: Geometry) -> None:
    x, y = g.centre
    xdotool("mousemove", str(x), str(y), "click", "3")


def open_menu(locate, attempts: int = 4, wait: float = 4.0) -> bool:
    """Right-clicks the icon that locate() finds (a Geometry, or None) until its menu is open.
    A click can land while GTK is still realising the icon (seen once in a CI run on a busy
    machine: the icon docked, the first click did nothing); a real user would click again."""
    for _ in range(attempts):
        g = locate()
        if g is None:
            time.sleep(0.5)
            continue
        right_click(g)
        if wait_until(open_menus, wait):
            return True
    return False


def left_click(g: Geometry) -> None:
    x, y = g.centre
    xdotool("mousemove", str(x), str(y), "click", "1")


def open_menus() -> list[str]:
    """Visible GTK menu windows (popups named after the program)."""
    out = xdotool("search", "--onlyvisible", "--classname", "whamsah-tray", check=False)
    menus = []
    for window in out.split():
        try:
            g = window_geometry(window)
        except RuntimeError:
            continue
        if g.width > 64 and g.height >= 16:  # not the icon (<= 64 px) nor GTK's hidden 10x10 windows
            menus.append(window)
    return menus


def selectable(items) -> list:
    """The items GTK's keyboard navigation stops at: visible, enabled, not separators."""
    return [item for item in items if item.visible and item.enabled and item.text != "- - - -"]


def _key(*keys: str) -> None:
    for key in keys:
        xdotool("key", key)
        time.sleep(0.08)


def _screenshot_for_failure() -> str:
    import tempfile

    from PIL import ImageGrab

    path = os.path.join(tempfile.gettempdir(), f"whamsah-tray-menu-{os.getpid()}-{time.time():.0f}.png")
    ImageGrab.grab(xdisplay=os.environ["DISPLAY"]).save(path)
    return path


def choose(icon, g: Geometry, path: list[str]) -> None:
    """Right-click the icon and choose `path` (e.g. ["Vocals", "25 %"]) with the keyboard,
    computing each item's position from the menu the icon shows now."""
    import pystray

    if not open_menu(lambda: g):
        raise AssertionError("right-click did not open the tray menu")
    time.sleep(0.2)
    menu = icon.menu
    for depth, text in enumerate(path):
        items = selectable(list(menu.items))
        texts = [item.text for item in items]
        if text not in texts:
            _key("Escape", "Escape", "Escape")
            raise AssertionError(f"menu item {text!r} is not selectable; the menu has {texts}")
        index = texts.index(text)
        if depth == 0:
            _key(*["Down"] * (index + 1))  # nothing is selected when the menu pops up
        else:
            _key(*["Down"] * index)  # Right already selected the submenu's first item
        item = items[index]
        if depth < len(path) - 1:
            if not isinstance(item.submenu, pystray.Menu):
                raise AssertionError(f"{text!r} has no submenu")
            _key("Right")
            # Wait for the submenu's window, so that the next keys go to it even on a busy machine.
            if not wait_until(lambda: len(open_menus()) >= depth + 2, 10):
                shot = _screenshot_for_failure()
                _key("Escape", "Escape", "Escape")
                raise AssertionError(f"the submenu {text!r} did not open (screen: {shot}); "
                                     f"the menu has {texts}, {text!r} at {index}")
            time.sleep(0.1)
            menu = item.submenu
        else:
            _key("Return")
    wait_until(lambda: not open_menus(), 3)
