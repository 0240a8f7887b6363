"""The tray app on the real test desktop, with the real engine on the PulseAudio null sinks:
the icon docks (screenshot), a real right-click opens the GTK menu and choosing items changes the
engine and the profile, real X key events work the hotkeys, the file dialog (driven by xdotool)
plays a shared excerpt into the output sink, and notifications reach a D-Bus notification server.

One tray runs for the whole module (as for a user: one app, many actions); each test sets the
state it starts from. The tray runs in this process, on its own thread, so that the tests can read
the engine's status directly.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tray_driver as drive
from in_process_tray import running_tray
from engine_audio import RATE, recording
from whamsah_tray.app.icons import BACKGROUND, IconState

pytestmark = pytest.mark.desktop

# The dialog is GTK's on Linux: its location entry ignores a Return within ~0.1 s of the last typed
# key (it is still completing the name); a person is never that fast.
GTK_ENTRY_SETTLE_S = 0.4


@pytest.fixture(scope="module")
def tray(desktop, portaudio, tmp_path_factory):
    pytest.importorskip("gi", reason="PyGObject is not installed: no GTK tray menu to test "
                                     "(pip install 'PyGObject<3.50' pycairo)")
    home = tmp_path_factory.mktemp("tray")
    with running_tray(home, "tray-under-test",
                      audio={"input_device": desktop.cable_monitor, "output_device": desktop.speakers},
                      levels={"vocals": 100, "instrumental": 100, "bypass": False},
                      file_dialog={"last_folder": str(home)}) as running:
        assert running.app.backend.name == "gtk", \
            "no StatusNotifier host on the test desktop: the GTK status icon is expected"
        yield running


def test_icon_docks_in_the_tray_and_draws_the_engine_state(tray):
    assert drive.wait_until(lambda: tray.app._drawn_state in (IconState.RUNNING, IconState.DRY), 5), \
        f"the icon shows {tray.app._drawn_state} for a running engine"
    g = tray.icon_geometry()
    # The tray host repaints from its own main loop, a moment after the app hands it the image:
    # look until the screen shows the drawn state's colour (the other screenshot tests do the same).
    shown = drive.wait_until(
        lambda: drive.colour_share(drive.screenshot(g), BACKGROUND[tray.app._drawn_state]) > 0.25, 5)
    pixels = drive.screenshot(g)
    expected = tray.app._drawn_state
    assert shown, (f"the docked icon never showed {expected.name}'s colour {BACKGROUND[expected]}; "
                   f"its centre is {tuple(int(v) for v in pixels[g.height // 2, g.width // 2])}")
    panel = tuple(int(v) for v in pixels[0, 0])  # the tray host's background, at the icon's corner
    different = np.any(np.abs(pixels - np.array(panel)) > 30, axis=-1).mean()
    assert different > 0.3, f"only {different:.0%} of the docked icon differs from the tray background"


def _checked(menu, text: str) -> list[str]:
    """Texts of the checked items of the submenu `text`, as the menu would show them now."""
    item = next(i for i in menu.items if i.text == text)
    return [i.text for i in item.submenu.items if i.checked]


def test_menu_sets_levels_in_the_engine_and_the_profile(tray):
    tray.choose("Vocals", "25 %")
    tray.wait_engine(lambda s: round(s.vocals) == 25, "vocals 25 %")
    tray.wait_profile("levels", "vocals", 25)
    assert _checked(tray.app.icon.menu, "Vocals") == ["25 %"]

    tray.choose("Instrumental", "50 %")
    tray.wait_engine(lambda s: round(s.instrumental) == 50, "instrumental 50 %")
    tray.wait_profile("levels", "instrumental", 50)

    tray.choose("Vocals", "100 %")
    tray.wait_engine(lambda s: round(s.vocals) == 100, "vocals back to 100 %")
    tray.choose("Instrumental", "100 %")
    tray.wait_engine(lambda s: round(s.instrumental) == 100, "instrumental back to 100 %")


def test_bypass_from_the_menu_changes_engine_icon_and_profile(tray):
    tray.choose("Bypass")
    tray.wait_engine(lambda s: s.bypass, "bypass on")
    tray.wait_profile("levels", "bypass", True)
    g = tray.icon_geometry()
    assert drive.wait_until(lambda: drive.colour_share(drive.screenshot(g), BACKGROUND[IconState.BYPASS]) > 0.25, 5), \
        "the icon does not show bypass"
    assert [i.text for i in tray.app.icon.menu.items if i.checked] == ["Bypass"]
    tray.choose("Bypass")
    tray.wait_engine(lambda s: not s.bypass, "bypass off")
    tray.wait_profile("levels", "bypass", False)


def test_mute_vocals_is_the_left_click_action(tray):
    g = tray.icon_geometry()
    drive.left_click(g)
    tray.wait_engine(lambda s: round(s.vocals) == 0, "vocals muted by left click")
    tray.wait_profile("levels", "vocals", 0)
    if tray.app._drawn_state is not IconState.DRY:  # dry (no weights) outranks muted in the icon
        assert drive.wait_until(
            lambda: drive.colour_share(drive.screenshot(g), BACKGROUND[IconState.VOCALS_MUTED]) > 0.25, 5)
    tray.choose("Mute vocals")
    tray.wait_engine(lambda s: round(s.vocals) == 100, "vocals back to their level before muting")


def test_real_key_events_work_the_hotkeys(tray, desktop):
    assert tray.app.hotkeys is not None and "toggle_vocals" in tray.app.hotkeys.active
    time.sleep(0.3)
    desktop.run("xdotool", "key", "ctrl+alt+v")
    tray.wait_engine(lambda s: round(s.vocals) == 0, "vocals muted by ctrl+alt+v")
    desktop.run("xdotool", "key", "ctrl+alt+v")
    tray.wait_engine(lambda s: round(s.vocals) == 100, "vocals back by ctrl+alt+v")
    desktop.run("xdotool", "key", "ctrl+alt+Down")
    tray.wait_engine(lambda s: round(s.vocals) == 90, "vocals down 10 %")
    desktop.run("xdotool", "key", "ctrl+alt+Left")
    tray.wait_engine(lambda s: round(s.instrumental) == 90, "instrumental down 10 %")
    desktop.run("xdotool", "key", "ctrl+alt+Right")
    desktop.run("xdotool", "key", "ctrl+alt+Up")
    tray.wait_engine(lambda s: round(s.vocals) == 100 and round(s.instrumental) == 100, "both back up")
    desktop.run("xdotool", "key", "ctrl+alt+b")
    tray.wait_engine(lambda s: s.bypass, "bypass by ctrl+alt+b")
    desktop.run("xdotool", "key", "ctrl+alt+b")
    tray.wait_engine(lambda s: not s.bypass, "bypass off by ctrl+alt+b")
    tray.wait_profile("levels", "vocals", 100)


def test_key_menu_and_hotkeys_transpose_what_the_speakers_play(tray, desktop):
    """Key ▸ +3 semitones (the menu), then Ctrl+Alt+Page Down / Page Up (real X key events): the
    engine, the profile and the tooltip follow, and a 220 Hz tone played into the cable reaches
    the speakers three semitones up (levels 100 % / 100 %: the mix is the transposed input)."""
    from engine_audio import play_into
    from pitch import cents, measured_pitch, sawtooth
    import soxr

    tray.choose("Key", "+3 semitones")
    tray.wait_engine(lambda s: s.key == 3, "key +3")
    tray.wait_profile("levels", "key", 3)
    assert _checked(tray.app.icon.menu, "Key") == ["+3 semitones"]
    assert drive.wait_until(lambda: "Key +3" in tray.app.tooltip_text(tray.app.engine.view()), 5)
    try:
        tone = soxr.resample(np.stack([sawtooth(220.0, 2.5)] * 2, axis=1), 44100, RATE).astype(np.float32)
        expected = 220.0 * 2 ** (3 / 12)
        heard = None
        for _ in range(3):  # a busy machine's recorder may slip; a wrong key fails every time
            with recording(f"{desktop.speakers}.monitor") as rec:
                play_into(desktop.cable, tone)
            mono = rec["audio"][:, 0].astype(np.float64)
            loud = np.flatnonzero(np.abs(mono) > 0.05)
            heard = measured_pitch(mono[loud[0] + RATE // 2:loud[-1] - RATE // 2], expected, RATE)
            if abs(cents(heard, expected)) < 5:
                break
        assert abs(cents(heard, expected)) < 5, (heard, expected)

        time.sleep(0.3)
        for _ in range(4):
            desktop.run("xdotool", "key", "ctrl+alt+Next")  # Page Down
        tray.wait_engine(lambda s: s.key == -1, "key -1 after four steps down")
        desktop.run("xdotool", "key", "ctrl+alt+Prior")  # Page Up
        tray.wait_engine(lambda s: s.key == 0, "key 0 after one step up")
        tray.wait_profile("levels", "key", 0)
    finally:
        tray.choose("Key", "Original key")
        tray.wait_engine(lambda s: s.key == 0, "original key")


def test_output_and_input_devices_from_the_menu(tray, desktop):
    tray.choose("Output", "System default")
    tray.wait_engine(lambda s: s.output_device != desktop.speakers, "output: the system default")
    tray.wait_profile("audio", "output_device", "")
    tray.wait_engine(lambda s: s.state.value == "running", "running again on the default output")

    tray.choose("Output", desktop.speakers)
    tray.wait_engine(lambda s: s.output_device == desktop.speakers and s.state.value == "running",
                     "output: speakers")
    tray.wait_profile("audio", "output_device", desktop.speakers)
    assert desktop.speakers in _checked(tray.app.icon.menu, "Output")

    tray.choose("Input", desktop.cable_monitor)
    tray.wait_engine(lambda s: s.input_device == desktop.cable_monitor and s.state.value == "running",
                     "input: the cable's monitor")
    tray.wait_profile("audio", "input_device", desktop.cable_monitor)


def test_start_at_login_from_the_menu_writes_the_autostart_entry(tray):
    entry = tray.config_home / "autostart" / "whamsah-tray.desktop"
    assert not entry.exists()
    tray.choose("Start at login")
    assert drive.wait_until(entry.exists, 10)
    assert "Exec=" in entry.read_text()
    tray.wait_profile("startup", "start_at_login", True)
    tray.choose("Start at login")
    assert drive.wait_until(lambda: not entry.exists(), 10)
    tray.wait_profile("startup", "start_at_login", False)


def test_missing_weights_or_model_state_is_shown(tray):
    status = tray.status()
    tooltip = tray.app.tooltip_text()
    if tray.app.engine.view().model_ready:
        assert "Model " in tooltip and " ms" in tooltip
        pytest.skip("the default model's weights are installed: the dry state cannot be shown here")
    assert "audio passes through" in tooltip
    problem = tray.app.engine.view().model_problem
    assert problem and problem in tooltip
    assert drive.wait_until(lambda: any(problem in n["body"] for n in tray.notifications()), 5), \
        f"no desktop notification about the missing model (got {tray.notifications()})"
    assert status.state.value == "running"  # the engine keeps working, dry


def _excerpt(shared_data: Path) -> Path:
    tracks = sorted(p for p in (shared_data / "musdb7" / "test").iterdir() if (p / "vocals.ogg").exists())
    if not tracks:
        pytest.skip(f"no musdb7 test excerpt in {shared_data}")
    return tracks[0] / "vocals.ogg"


def _record_rms(desktop, seconds: float) -> float:
    """RMS of what the output sink plays, recorded from its monitor for `seconds` (into a file:
    a recorder writing into a pipe that nobody reads blocks once the pipe's 64 KiB are full, and
    then keeps only the first 0.17 s, the start of the file's lead-in silence)."""
    with recording(f"{desktop.speakers}.monitor") as rec:
        time.sleep(seconds)
    samples = rec["audio"]
    assert len(samples) > 0.8 * seconds * RATE, f"the recorder got only {len(samples)} frames in {seconds} s"
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_play_file_dialog_plays_a_shared_excerpt_into_the_output_sink(tray, desktop, shared_data, tmp_path):
    excerpt = _excerpt(shared_data)
    folder = tmp_path / "music"
    folder.mkdir()
    song = folder / "excerpt.ogg"
    song.write_bytes(excerpt.read_bytes())
    tray.app.store.update("file_dialog", last_folder=str(folder))

    silence = _record_rms(desktop, 0.6)
    tray.choose("Play file…")
    window = desktop.run("xdotool", "search", "--sync", "--onlyvisible", "--name", "^Open audio file$",
                         timeout=20).split()[0]
    desktop.run("xdotool", "windowfocus", "--sync", window)
    desktop.run("xdotool", "type", "--delay", "20", song.name)  # relative: the dialog starts in last_folder
    time.sleep(GTK_ENTRY_SETTLE_S)
    desktop.run("xdotool", "key", "Return")
    tray.wait_engine(lambda s: s.state.value == "playing_file", "playing the chosen file")
    playing = _record_rms(desktop, 1.5)
    assert playing > 0.01 and playing > 10 * silence, f"output RMS {playing:.4f} while playing (silence {silence:.5f})"
    tray.wait_profile("file_dialog", "last_folder", str(folder))

    items = {i.text: i for i in tray.app.icon.menu.items}
    assert items["Stop file"].enabled and items["Pause"].enabled and items["Restart"].enabled
    assert drive.wait_until(lambda: re.search(r"Playing excerpt\.ogg \(0:0\d / 0:0\d\)", tray.app.tooltip_text()), 3), \
        tray.app.tooltip_text()
    tray.wait_engine(lambda s: s.position_s > 1.0, "1 s into the file")
    tray.choose("Restart")
    tray.wait_engine(lambda s: s.state.value == "playing_file" and s.position_s < 0.8, "the file from its start")
    tray.choose("Pause")
    tray.wait_engine(lambda s: s.paused, "paused")
    tray.choose("Resume")
    tray.wait_engine(lambda s: not s.paused, "resumed")
    tray.choose("Stop file")
    tray.wait_engine(lambda s: s.state.value == "running", "back to sync mode after Stop file")
    assert not {i.text: i for i in tray.app.icon.menu.items}["Stop file"].enabled


def test_play_file_dialog_plays_the_song_as_karaoke(tray, desktop, listener_excerpt, offline_vocals_off, tmp_path):
    """Vocals at 0 % from the menu, then Play file… in the real dialog: what the speakers play is
    the song without its voice, as the same model separates it offline (tests/listener.py)."""
    from listener import assert_vocals_removed, best_explained

    folder = tmp_path / "karaoke"
    folder.mkdir()
    song = listener_excerpt.write_mixture(folder / "song.wav")
    tray.app.store.update("file_dialog", last_folder=str(folder))
    tray.choose("Vocals", "0 %")
    tray.wait_engine(lambda s: round(s.vocals) == 0, "vocals 0 %")
    try:
        def play_through_the_dialog():
            with recording(f"{desktop.speakers}.monitor") as rec:
                tray.choose("Play file…")
                window = desktop.run("xdotool", "search", "--sync", "--onlyvisible", "--name",
                                     "^Open audio file$", timeout=20).split()[0]
                desktop.run("xdotool", "windowfocus", "--sync", window)
                desktop.run("xdotool", "type", "--delay", "20", song.name)
                time.sleep(GTK_ENTRY_SETTLE_S)
                desktop.run("xdotool", "key", "Return")
                tray.wait_engine(lambda s: s.state.value == "playing_file", "playing the chosen file")
                tray.wait_engine(lambda s: s.state.value == "running", "back to sync mode at the end", 30)
            return rec["audio"]
        heard = best_explained(play_through_the_dialog, listener_excerpt)
        assert_vocals_removed(heard, listener_excerpt, offline_vocals_off, "tray: Play file… at vocals 0 %")
    finally:
        tray.choose("Vocals", "100 %")
        tray.wait_engine(lambda s: round(s.vocals) == 100, "vocals back to 100 %")


def test_the_vocals_hotkey_turns_the_cable_into_karaoke(tray, desktop, listener_excerpt, offline_vocals_off):
    """Sync mode: an app plays the song into the cable; after Ctrl+Alt+V (a real X key event) the
    speakers play it without its voice."""
    from engine_audio import play_into
    from listener import assert_vocals_removed, best_explained

    tray.wait_engine(lambda s: s.state.value == "running" and round(s.vocals) == 100, "running at vocals 100 %")
    time.sleep(0.3)
    desktop.run("xdotool", "key", "ctrl+alt+v")
    tray.wait_engine(lambda s: round(s.vocals) == 0, "vocals muted by ctrl+alt+v")
    try:
        def play_into_the_cable():
            with recording(f"{desktop.speakers}.monitor") as rec:
                play_into(desktop.cable, listener_excerpt.mixture)
            return rec["audio"]
        heard = best_explained(play_into_the_cable, listener_excerpt)
        assert_vocals_removed(heard, listener_excerpt, offline_vocals_off, "tray: Ctrl+Alt+V in sync mode")
    finally:
        desktop.run("xdotool", "key", "ctrl+alt+v")
        tray.wait_engine(lambda s: round(s.vocals) == 100, "vocals back by ctrl+alt+v")


def test_play_file_hotkey_opens_the_dialog_and_cancel_changes_nothing(tray, desktop):
    desktop.run("xdotool", "key", "ctrl+alt+o")
    window = desktop.run("xdotool", "search", "--sync", "--onlyvisible", "--name", "^Open audio file$",
                         timeout=20).split()[0]
    desktop.run("xdotool", "windowfocus", "--sync", window)
    desktop.run("xdotool", "key", "Escape")
    assert drive.wait_until(lambda: not tray.app.actions.dialog.is_open, 10)
    time.sleep(0.5)
    assert tray.status().state.value == "running"


def test_host_api_and_model_menus_show_what_is_there(tray, desktop):
    menu = {i.text: i for i in tray.app.icon.menu.items}
    apis = [i.text for i in menu["Host API"].submenu.items]
    assert "ALSA" in apis
    assert _checked(tray.app.icon.menu, "Host API") == [tray.status().host_api]
    models = [i.text for i in menu["Model"].submenu.items]
    installed = tray.app.engine.models()
    if installed:
        assert models == [label for _, label in installed]
    else:
        assert models == ["(no model installed)"]


def test_choosing_another_model_from_the_menu_switches_the_live_engine(tray):
    """With two models installed (whamsah-rt and WHAMSAHNet): the Model menu switches the running
    engine to the other one (its latency: the model's and its measured compute time), the profile
    remembers it, and the default comes back the same way."""
    installed = tray.app.engine.models()
    if len(installed) < 2:
        pytest.skip(f"only {len(installed)} model(s) installed: nothing to switch to")
    (default, default_label), (other, other_label) = installed[0], installed[1]
    tray.wait_engine(lambda s: s.model_name == default, f"the default model {default}")
    default_latency = tray.status().latency_ms
    try:
        from whamsah_tray.separation.registry import find_model

        model_ms = find_model(other).latency_ms
        assert model_ms > default_latency
        tray.choose("Model", other_label)
        tray.wait_engine(lambda s: s.model_name == other and s.state.value == "running"
                         and s.latency_ms > model_ms, f"model {other} at more than its {model_ms:.0f} ms", 90)
        tray.wait_profile("model", "name", other)
        assert _checked(tray.app.icon.menu, "Model") == [other_label]
        shown = [float(ms) for ms in re.findall(r"(\d+) ms", tray.app.tooltip_text())]
        assert shown and shown[0] > model_ms, tray.app.tooltip_text()  # the tooltip tells the new latency
    finally:
        tray.choose("Model", default_label)
        tray.wait_engine(lambda s: s.model_name == default and s.latency_ms < 2 * default_latency,
                         f"the default model {default} at its latency again", 60)
    tray.wait_profile("model", "name", default)


def _sink_input_sink(desktop, app_name: str) -> str | None:
    """The sink that the app called `app_name` plays into now, read from PulseAudio."""
    sinks = {line.split("\t")[0]: line.split("\t")[1]
             for line in desktop.pactl("list", "short", "sinks").splitlines() if "\t" in line}
    for app in json.loads(desktop.pactl("--format=json", "list", "sink-inputs")):
        if app.get("properties", {}).get("application.name") == app_name:
            return sinks.get(str(app["sink"]))
    return None


def test_virtual_cable_and_per_app_capture_from_the_menu(tray, desktop, tmp_path):
    import soundfile

    player_name = "WhamsahTestPlayer"
    tone = tmp_path / "tone.wav"
    t = np.arange(48000 * 30) / 48000
    soundfile.write(tone, (0.1 * np.sin(2 * np.pi * 330 * t)).astype("float32"), 48000)
    player = subprocess.Popen(["paplay", f"--property=application.name={player_name}", "-d", desktop.speakers,
                               str(tone)])
    try:
        assert drive.wait_until(lambda: _sink_input_sink(desktop, player_name) == desktop.speakers, 10)
        tray.choose("Create virtual cable")
        assert drive.wait_until(lambda: "whamsah_cable" in desktop.sink_names(), 10), "no cable was created"
        tray.wait_engine(lambda s: "whamsah" in (s.input_device or "").lower() and s.state.value == "running",
                         "recording the new cable")
        tray.wait_profile("linux_cable", "create_at_start", True)

        # The app shows in Capture app ▸ once the tray re-read the apps; wait until the menu has it.
        def menu_has_player():
            return any(player_name in app.label for app in tray.app.engine.playing_apps()) and \
                tray.app._drawn_menu_key is not None and \
                any(player_name in app.label for app in tray.app._drawn_menu_key[2][1])
        assert drive.wait_until(menu_has_player, 10), f"the player is not in the menu: {tray.app.engine.playing_apps()}"
        label = next(app.label for app in tray.app.engine.playing_apps() if player_name in app.label)
        tray.choose("Capture app", label)
        assert drive.wait_until(lambda: _sink_input_sink(desktop, player_name) == "whamsah_cable", 10), \
            "the app was not moved into the cable"
        assert drive.wait_until(lambda: any(a.captured for a in tray.app.engine.playing_apps()), 5)
        assert drive.wait_until(lambda: tray.app._drawn_menu_key[2][1] and
                                any(a.captured for a in tray.app._drawn_menu_key[2][1]), 5)
        tray.choose("Capture app", label)
        assert drive.wait_until(lambda: _sink_input_sink(desktop, player_name) == desktop.speakers, 10), \
            "releasing did not move the app back where it played"

        assert drive.wait_until(lambda: tray.app._drawn_menu_key[2][2] is True, 5)
        tray.choose("Remove virtual cable")
        assert drive.wait_until(lambda: "whamsah_cable" not in desktop.sink_names(), 10), "the cable is still there"
        tray.wait_profile("linux_cable", "create_at_start", False)
        assert _sink_input_sink(desktop, player_name) == desktop.speakers  # never left in a dead cable
        # No cable and no input chosen: the engine waits for one (never the default input), and
        # does not make the cable the user just removed again.
        tray.wait_engine(lambda s: s.state.value == "device_lost", "waiting for a cable after the removal")
        assert drive.wait_until(lambda: "no virtual cable" in tray.app.tooltip_text(), 5), tray.app.tooltip_text()
        time.sleep(1.0)
        assert "whamsah_cable" not in desktop.sink_names()
        # The menu's first entry offers the cable again; one click and the engine records it.
        tray.choose("No virtual cable — create one")
        tray.wait_engine(lambda s: s.state.value == "running" and "whamsah" in (s.input_device or "").lower(),
                         "recording the cable made from the menu")
    finally:
        player.terminate()
        player.wait(5)
        if "whamsah_cable" in desktop.sink_names():
            tray.app.engine.controller.remove_cable()
    tray.app.actions.choose_device("input", desktop.cable_monitor)
    tray.wait_engine(lambda s: s.input_device == desktop.cable_monitor and s.state.value == "running",
                     "running again on the test cable")


def test_the_tray_reads_the_app_list_again_only_after_the_server_changed(tray, desktop, tmp_path, monkeypatch):
    """The tray used to list the playing apps (pactl) every 2 s. Now it does so when `pactl
    subscribe` reported a change on the sound server (or every 30 s): no pactl call from the
    tray's refresher in 4.5 s of a quiet desktop, and an app that starts playing still appears in
    the list within seconds. The calls are counted on the way to the real pactl (the engine's own
    checks, on its controller thread, are not counted here)."""
    import soundfile
    from whamsah_tray.engine import pulse

    calls: list = []
    real_run = pulse._run
    def counted(*args):
        if threading.current_thread().name == "tray-refresh":
            calls.append(args)
        return real_run(*args)
    monkeypatch.setattr(pulse, "_run", counted)
    drive.wait_until(lambda: False, 2.5)  # whatever earlier tests left moving settles
    calls.clear()
    drive.wait_until(lambda: False, 4.5)  # two of the refresher's 2 s rounds, the engine's health checks
    assert calls == [], calls
    player_name = "WhamsahQuietPlayer"
    tone = tmp_path / "quiet.wav"
    soundfile.write(tone, np.zeros((48000 * 20, 2), "float32"), 48000)
    player = subprocess.Popen(["paplay", f"--property=application.name={player_name}", "-d", desktop.speakers,
                               str(tone)])
    try:
        assert drive.wait_until(lambda: any(player_name in app.label for app in tray.app.engine.playing_apps()), 6), \
            "the new app never reached the tray's list"
        assert calls, "listed without asking the server?"
    finally:
        player.terminate()
        player.wait(5)


def test_the_first_start_says_where_the_icon_is_once(tray):
    """The fixture's profile is a first start's (no startup.welcomed): one notification says where
    the icon is, and the profile remembers it was shown (a second start stays quiet)."""
    assert drive.wait_until(lambda: any("its icon is in the system tray" in n["body"] for n in tray.notifications()), 10), \
        tray.notifications()
    tray.wait_profile("startup", "welcomed", True)
    before = len(tray.notifications())
    tray.app._welcome_once()
    assert len(tray.notifications()) == before
