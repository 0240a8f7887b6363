"""TrayActions.choose_device across host APIs.

On Windows the Input ▸ / Output ▸ menus list each host API's devices (MME, DirectSound, WASAPI),
and the same cable has a different name under each (MME cuts names to 31 characters). Choosing a
device listed under another API must move the engine to that API, not look the name up in the
current one. This machine's PortAudio has one host API with devices (ALSA; OSS has none), so the
engine here is a stand-in that records the commands the tray sends and lists Windows-like devices:
a mock, because Windows host APIs cannot exist on this machine. The profile is the real store."""

from __future__ import annotations

import tomllib

from whamsah_tray.app.actions import TrayActions
from whamsah_tray.app.profile import ProfileStore
from whamsah_tray.app.status import EngineView
from whamsah_tray.engine.api import EngineCommand, EngineState, SetDevices

CABLE_MME = "CABLE Output (VB-Audio Virtual "
CABLE_WASAPI = "CABLE Output (VB-Audio Virtual Cable)"


class StandInEngine:
    """EngineLink's commands, recorded; a fixed Windows-like listing."""

    def __init__(self, host_api: str) -> None:
        self.host_api = host_api
        self.commands: list[EngineCommand] = []
        self.listing = {
            "input": [("MME", [CABLE_MME, "Microphone (Realtek)"]),
                      ("Windows WASAPI", [CABLE_WASAPI, "Microphone (Realtek(R) Audio)"])],
            "output": [("MME", ["Speakers (Realtek)"]),
                       ("Windows WASAPI", ["Speakers (Realtek(R) Audio)"])],
        }

    def view(self) -> EngineView:
        return EngineView(state=EngineState.RUNNING, host_api=self.host_api)

    def devices(self, kind: str) -> list[tuple[str, list[str]]]:
        return self.listing[kind]

    def send(self, command: EngineCommand) -> None:
        self.commands.append(command)
        if isinstance(command, SetDevices) and command.host_api is not None:
            self.host_api = command.host_api


def _actions(tmp_path, engine) -> tuple[TrayActions, ProfileStore]:
    store = ProfileStore(tmp_path / "profile.toml", debounce_s=0.0)
    store.load()
    return TrayActions(engine, store, notifier=None, dialog=None, autostart=None,
                       launch_command=list, on_quit=lambda: None), store


def _saved_audio(store: ProfileStore) -> dict:
    """The audio section as written to profile.toml (each field, the defaults included)."""
    store.save_now()
    return tomllib.loads(store.path.read_text())["audio"]


def test_a_device_of_the_api_in_use_changes_only_that_device(tmp_path):
    engine = StandInEngine("MME")
    actions, store = _actions(tmp_path, engine)
    actions.choose_device("output", "Speakers (Realtek)", "MME")
    actions.choose_device("input", CABLE_MME, "MME")
    assert engine.commands == [SetDevices(output="Speakers (Realtek)"), SetDevices(input=CABLE_MME)]
    audio = _saved_audio(store)
    assert (audio["input_device"], audio["output_device"]) == (CABLE_MME, "Speakers (Realtek)")


def test_a_device_listed_under_another_api_moves_the_engine_there(tmp_path):
    engine = StandInEngine("MME")
    actions, store = _actions(tmp_path, engine)
    actions.choose_device("output", "Speakers (Realtek)", "MME")
    # The cable's full name is only listed under WASAPI: choosing it there moves both streams to
    # WASAPI in one command; the MME speakers have no namesake there, so the output takes WASAPI's default.
    actions.choose_device("input", CABLE_WASAPI, "Windows WASAPI")
    assert engine.commands[-1] == SetDevices(CABLE_WASAPI, "", "Windows WASAPI")
    audio = _saved_audio(store)
    assert (audio["host_api"], audio["input_device"], audio["output_device"]) == ("Windows WASAPI", CABLE_WASAPI, "")


def test_the_other_direction_keeps_its_device_when_the_new_api_has_it(tmp_path):
    engine = StandInEngine("MME")
    engine.listing["output"][1] = ("Windows WASAPI", ["Speakers (Realtek)"])
    actions, store = _actions(tmp_path, engine)
    actions.choose_device("output", "Speakers (Realtek)", "MME")
    actions.choose_device("input", CABLE_WASAPI, "Windows WASAPI")
    assert engine.commands[-1] == SetDevices(CABLE_WASAPI, "Speakers (Realtek)", "Windows WASAPI")
    assert _saved_audio(store)["output_device"] == "Speakers (Realtek)"


def test_the_automatic_choice_stays_on_the_api_in_use(tmp_path):
    engine = StandInEngine("Windows WASAPI")
    actions, store = _actions(tmp_path, engine)
    actions.choose_device("input", "", "")
    assert engine.commands == [SetDevices(input="")]
    assert _saved_audio(store)["input_device"] == ""


def test_choosing_a_host_api_starts_both_directions_from_its_defaults(tmp_path):
    engine = StandInEngine("MME")
    actions, store = _actions(tmp_path, engine)
    actions.choose_device("input", CABLE_MME, "MME")
    actions.choose_host_api("Windows WASAPI")
    assert engine.commands[-1] == SetDevices("", "", "Windows WASAPI")
    audio = _saved_audio(store)
    assert (audio["host_api"], audio["input_device"], audio["output_device"]) == ("Windows WASAPI", "", "")


class WaitingEngine(StandInEngine):
    """The engine waiting for a virtual cable, on a platform where we cannot make one."""

    def view(self) -> EngineView:
        return EngineView(state=EngineState.DEVICE_LOST, error="no virtual cable: install VB-Cable ...; waiting for a virtual cable")

    def linux_cable_supported(self) -> bool:
        return False


def test_without_a_cable_the_menu_entry_opens_the_install_guide(tmp_path, monkeypatch):
    """Windows/macOS (patched platform and browser: neither can run here): the entry opens the
    VB-Cable / BlackHole guide; nothing is sent to the engine."""
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    for platform, site in (("win32", "vb-audio.com"), ("darwin", "BlackHole")):
        monkeypatch.setattr("sys.platform", platform)
        engine = WaitingEngine("Windows WASAPI")
        actions, _ = _actions(tmp_path, engine)
        assert actions.waiting_for_cable()
        actions.get_a_cable()
        assert site in opened[-1] and engine.commands == []
