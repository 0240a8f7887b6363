"""The tray menu, built as a pystray Menu whose every check mark, radio dot and enabled flag is read
from the engine's current state (`TrayActions.view()`), never from what was last clicked. The tray
calls `icon.update_menu()` after each engine event, so the menu follows the engine.

Menu: Vocals ▸, Instrumental ▸ (0-100 % radio), Key ▸ (-6..+6 semitones, radio), Mute vocals
(the default action), Bypass,
Play file…, Pause/Resume, Back 10 s, Restart, Stop file, Input ▸, Output ▸ (grouped by host API), Host API ▸, Model ▸,
Capture app ▸ / Create or Remove virtual cable (Linux), Start at login, Open profile folder, Quit.

Threads: built and evaluated on the tray's GUI thread; item actions run there too and only call
`TrayActions`, whose methods queue engine commands and return at once. The lists the menu shows
(devices, host APIs, models, playing apps) are read from the `EngineLink` (`actions.engine`), which
caches them.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

from whamsah_tray.engine.api import MAX_KEY

if TYPE_CHECKING:
    from whamsah_tray.app.actions import TrayActions
    from whamsah_tray.app.status import EngineView

LEVEL_STEPS = (0, 25, 50, 75, 100)


def _nothing(icon, menu_item) -> None:
    """The action of disabled lines (headers, placeholders)."""


def _radio_level(pystray, actions: "TrayActions", which: str) -> Any:
    def item(percent: int):
        return pystray.MenuItem(
            f"{percent} %",
            lambda icon, menu_item: actions.set_level(which, percent),
            checked=lambda menu_item: getattr(actions.view(), which) == percent,
            radio=True,
        )

    def off_step():
        # A level set by hotkey (e.g. 60 %) shows as its own checked line.
        value = getattr(actions.view(), which)
        if value in LEVEL_STEPS:
            return []
        return [pystray.MenuItem(f"{value} %", _nothing, checked=lambda menu_item: True,
                                 radio=True, enabled=False)]

    return pystray.Menu(lambda: [*(item(p) for p in LEVEL_STEPS), *off_step()])


def key_label(semitones: int) -> str:
    """'+2 semitones', '−1 semitone', 'Original key' (a real minus sign, as a menu shows numbers)."""
    if semitones == 0:
        return "Original key"
    sign = "+" if semitones > 0 else "−"
    return f"{sign}{abs(semitones)} semitone{'s' if abs(semitones) != 1 else ''}"


def _key_menu(pystray, actions: "TrayActions") -> Any:
    def item(semitones: int):
        return pystray.MenuItem(
            key_label(semitones),
            lambda icon, menu_item: actions.set_key(semitones),
            checked=lambda menu_item: actions.view().key == semitones,
            radio=True,
        )

    return pystray.Menu(*(item(n) for n in range(MAX_KEY, -MAX_KEY - 1, -1)))


def _device_menu(pystray, actions: "TrayActions", kind: str) -> Any:
    """Input ▸ / Output ▸: the automatic choice, then each host API's devices (a header line per
    API). The remembered choice is checked; when the remembered device is missing, the device the
    engine actually opened is."""
    def items():
        view = actions.view()
        current = view.input_device if kind == "input" else view.output_device
        remembered = actions.remembered_device(kind)
        # For the input, no name means "a virtual cable if there is one (ours first), else the
        # system default" (the engine's rule); for the output, the system default.
        label = "Automatic (virtual cable, else default)" if kind == "input" else "System default"
        entries = [pystray.MenuItem(
            label,
            lambda icon, menu_item: actions.choose_device(kind, ""),
            checked=lambda menu_item: not remembered,
            radio=True,
        )]
        for host_api, names in actions.engine.devices(kind):
            entries.append(pystray.Menu.SEPARATOR)
            entries.append(pystray.MenuItem(host_api, _nothing, enabled=False))
            for name in names:
                entries.append(pystray.MenuItem(
                    name,
                    (lambda n, api: lambda icon, menu_item: actions.choose_device(kind, n, api))(name, host_api),
                    checked=(lambda n, api: lambda menu_item: bool(remembered) and current == n
                             and view.host_api == api)(name, host_api),
                    radio=True,
                ))
        return entries

    return pystray.Menu(items)


def _host_api_menu(pystray, actions: "TrayActions") -> Any:
    def items():
        view = actions.view()
        return [
            pystray.MenuItem(
                name,
                (lambda n: lambda icon, menu_item: actions.choose_host_api(n))(name),
                checked=(lambda n: lambda menu_item: view.host_api == n)(name),
                radio=True,
            )
            for name in actions.engine.host_apis()
        ] or [pystray.MenuItem("(none found)", _nothing, enabled=False)]

    return pystray.Menu(items)


def _model_menu(pystray, actions: "TrayActions") -> Any:
    def items():
        view = actions.view()
        entries = [
            pystray.MenuItem(
                label,
                (lambda n: lambda icon, menu_item: actions.choose_model(n))(name),
                checked=(lambda n: lambda menu_item: view.model == n)(name),
                radio=True,
            )
            for name, label in actions.engine.models()
        ]
        return entries or [pystray.MenuItem("(no model installed)", _nothing, enabled=False)]

    return pystray.Menu(items)


def _capture_menu(pystray, actions: "TrayActions") -> Any:
    def items():
        apps = actions.engine.playing_apps()
        if not apps:
            return [pystray.MenuItem("(no application is playing)", _nothing, enabled=False)]
        return [
            pystray.MenuItem(
                app.label,
                (lambda a: lambda icon, menu_item: actions.toggle_capture(a.id))(app),
                checked=(lambda a: lambda menu_item: a.captured)(app),
            )
            for app in apps
        ]

    return pystray.Menu(items)


def menu_key(view: EngineView) -> tuple:
    """The parts of the engine's state that the menu shows (not the file position, which changes
    four times a second): the tray rebuilds the menu only when this changes."""
    return (view.state, view.vocals, view.instrumental, view.key, view.bypass, view.paused, view.model,
            view.host_api, view.input_device, view.output_device)


def build_menu(pystray, actions: "TrayActions") -> Any:
    """The whole tray menu (see the module docstring for its items)."""
    item = pystray.MenuItem

    def act(function: Callable[[], Any]):
        return lambda icon, menu_item: function()

    view = actions.view
    link = actions.engine
    cable_guide = "No virtual cable — create one" if link.linux_cable_supported() else \
        "No virtual cable — how to install " + ("BlackHole…" if sys.platform == "darwin" else "VB-Cable…")
    entries = [
        item(cable_guide, act(actions.get_a_cable), visible=lambda i: actions.waiting_for_cable()),
        item("Allow microphone access…", act(actions.open_microphone_settings),
             visible=lambda i: actions.microphone_blocked()),
        item("Vocals", _radio_level(pystray, actions, "vocals")),
        item("Instrumental", _radio_level(pystray, actions, "instrumental")),
        item("Key", _key_menu(pystray, actions)),
        item("Mute vocals", act(actions.toggle_vocals), checked=lambda i: view().vocals_muted, default=True),
        item("Bypass", act(actions.toggle_bypass), checked=lambda i: view().bypass),
        pystray.Menu.SEPARATOR,
        item("Play file…", act(actions.open_file_dialog)),
        item(lambda i: "Resume" if view().paused else "Pause", act(actions.toggle_pause),
             enabled=lambda i: view().playing_file),
        item("Back 10 s", act(actions.back_10_s), enabled=lambda i: view().playing_file),
        item("Restart", act(actions.restart_file), enabled=lambda i: view().playing_file),
        item("Stop file", act(actions.stop_file), enabled=lambda i: view().playing_file),
        pystray.Menu.SEPARATOR,
        item("Input", _device_menu(pystray, actions, "input")),
        item("Output", _device_menu(pystray, actions, "output")),
        item("Host API", _host_api_menu(pystray, actions)),
        item("Model", _model_menu(pystray, actions)),
    ]
    if link.linux_cable_supported():
        entries += [
            pystray.Menu.SEPARATOR,
            item("Capture app", _capture_menu(pystray, actions)),
            item("Route all audio through WHAMSAH", act(actions.toggle_route_all),
                 checked=lambda i: actions.routing_all()),
            item("Create virtual cable", act(actions.create_cable), visible=lambda i: not link.cable_exists()),
            item("Remove virtual cable", act(actions.remove_cable), visible=lambda i: link.cable_exists()),
        ]
    entries += [
        pystray.Menu.SEPARATOR,
        item("Start at login", act(actions.toggle_start_at_login), checked=lambda i: actions.start_at_login()),
        item("Open profile folder", act(actions.open_profile_folder)),
        item("Quit", act(actions.quit)),
    ]
    return pystray.Menu(*entries)
