"""macOS: every GUI call on the icon, and the hotkey listener's creation, happen on the main
thread. mocked: AppKit and PyObjC cannot run here, so `PyObjCTools.AppHelper.callAfter` is a
stand-in that queues calls for the test's main thread, and the icon is a stand-in that records the
thread of each GUI call it gets, as AppKit would object to. The tray's own refresh runs for real."""

from __future__ import annotations

import queue
import sys
import threading
import types

import pytest

from whamsah_tray.app.main_thread import MainThreadIcon, call_on_main_thread, on_main_thread


class RecordingIcon:
    """A pystray icon stand-in: records (what, thread id) for each GUI call."""

    HAS_MENU = True
    HAS_NOTIFICATION = True

    def __init__(self, *args, **kwargs) -> None:
        object.__setattr__(self, "calls", [])

    def __setattr__(self, name, value) -> None:
        self.calls.append((name, threading.get_ident()))
        object.__setattr__(self, name, value)

    def update_menu(self) -> None:
        self.calls.append(("update_menu", threading.get_ident()))

    def notify(self, message, title=None) -> None:
        self.calls.append(("notify", threading.get_ident()))

    def stop(self) -> None:
        self.calls.append(("stop", threading.get_ident()))


@pytest.fixture
def fake_appkit(monkeypatch):
    """PyObjCTools.AppHelper.callAfter as a queue that the test's (main) thread drains."""
    pending: queue.Queue = queue.Queue()
    helper = types.SimpleNamespace(callAfter=pending.put)
    monkeypatch.setitem(sys.modules, "PyObjCTools", types.SimpleNamespace(AppHelper=helper))
    monkeypatch.setitem(sys.modules, "PyObjCTools.AppHelper", helper)

    def drain() -> None:
        while True:
            try:
                pending.get_nowait()()
            except queue.Empty:
                return
    return drain


def test_calls_from_other_threads_run_on_the_main_thread_in_order(fake_appkit):
    raw = RecordingIcon()
    icon = on_main_thread(raw, platform="darwin")
    assert isinstance(icon, MainThreadIcon)

    def worker() -> None:
        icon.visible = True
        icon.title = "WHAMSAH Tray: running"
        icon.update_menu()
        icon.notify("hello", "WHAMSAH Tray")
        icon.stop()
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert raw.calls == []  # nothing touched AppKit off the main thread
    fake_appkit()
    main = threading.get_ident()
    assert raw.calls == [("visible", main), ("title", main), ("update_menu", main), ("notify", main), ("stop", main)]
    assert raw.title == "WHAMSAH Tray: running"
    assert on_main_thread(raw, platform="linux") is raw  # elsewhere: the icon itself
    ran = []
    call_on_main_thread(lambda: ran.append(threading.get_ident()), platform="linux")
    assert ran == [main]


def test_the_trays_refresh_from_its_refresher_thread_touches_the_icon_only_on_the_main_thread(fake_appkit, tmp_path,
                                                                                              monkeypatch):
    from whamsah_tray.app.backend import TrayBackend
    from whamsah_tray.app.profile import ProfileStore
    from whamsah_tray.app.status import EngineView
    from whamsah_tray.app.tray import TrayApp
    from whamsah_tray.engine.api import EngineState, Severity

    class StandInEngine:  # the tray's view of the engine, changing under it
        def __init__(self) -> None:
            self.state = EngineState.STARTING

        def view(self) -> EngineView:
            return EngineView(state=self.state, model="whamsah-rt", model_ready=self.state is EngineState.RUNNING)

        def take_messages(self):
            return [(Severity.WARNING, "audio device lost; waiting for it to come back")] \
                if self.state is EngineState.RUNNING else []

        def menu_lists_key(self):
            return self.state

        def cable_exists(self) -> bool:
            return False

        def linux_cable_supported(self) -> bool:
            return False

    menu_module = types.SimpleNamespace(Menu=lambda *a, **k: ("menu", a), MenuItem=lambda *a, **k: ("item", a))
    menu_module.Menu.SEPARATOR = None
    backend = TrayBackend(pystray=menu_module, icon_class=RecordingIcon, name="darwin")
    store = ProfileStore(tmp_path / "profile.toml", debounce_s=0.0)
    result = store.load()
    engine = StandInEngine()
    monkeypatch.setattr(sys, "platform", "darwin")
    app = TrayApp(backend, engine, store, result, autostart=types.SimpleNamespace(is_enabled=lambda: False),
                  dialog=object())
    app.icon = app._wrap_icon(app._make_icon())
    raw = getattr(app.icon, "_icon", app.icon)  # unwrapped, the refresh below would touch it off the main thread
    engine.state = EngineState.RUNNING
    thread = threading.Thread(target=app.refresh, name="tray-refresh")
    thread.start()
    thread.join()
    assert not [c for c in raw.calls if c[1] != threading.get_ident()]
    fake_appkit()
    done = [name for name, _ in raw.calls]
    assert {"icon", "title", "update_menu", "notify"} <= set(done), done
    assert all(ident == threading.get_ident() for _, ident in raw.calls)
