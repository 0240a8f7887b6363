"""The TOML profile: round trip, declared defaults and bounds, unknown keys kept, corrupt file moved
aside, atomic and debounced writes. Real files in a temporary folder; no display needed."""

from __future__ import annotations

import threading
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from whamsah_tray.app.profile import (
    SCHEMA_VERSION,
    Profile,
    ProfileStore,
    default_profile_path,
)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_missing_file_gives_defaults_and_creates_nothing(tmp_path):
    store = ProfileStore(tmp_path / "profile.toml")
    result = store.load()
    assert result.profile == Profile()
    assert result.warnings == [] and result.error is None
    assert not (tmp_path / "profile.toml").exists()


def test_default_path_is_in_the_user_config_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_profile_path() == tmp_path / "whamsah-tray" / "profile.toml"


def test_round_trip_restores_every_section(tmp_path):
    path = tmp_path / "sub" / "profile.toml"
    store = ProfileStore(path, debounce_s=0.05)
    store.load()
    store.update("audio", host_api="ALSA", input_device="cable_monitor", output_device="speakers")
    store.update("levels", vocals=25, instrumental=140, bypass=True)
    store.update("model", name="tiny")
    store.update("hotkeys", toggle_vocals="<ctrl>+<shift>+k", play_file="")
    store.update("startup", start_at_login=True)
    store.update("linux_cable", create_at_start=True, make_default_sink=True)
    store.update("file_dialog", last_folder="/music/ö ü")
    store.flush()

    again = ProfileStore(path)
    result = again.load()
    assert result.warnings == []
    assert result.profile == store.profile
    assert result.profile.levels.vocals == 25 and result.profile.levels.bypass is True
    assert result.profile.hotkeys.toggle_vocals == "<ctrl>+<shift>+k"
    assert result.profile.hotkeys.play_file == ""
    assert result.profile.file_dialog.last_folder == "/music/ö ü"
    assert tomllib.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_invalid_values_fall_back_to_their_defaults_with_a_warning(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text(tomli_w.dumps({
        "schema_version": 1,
        "levels": {"vocals": 400, "instrumental": "loud", "bypass": 1},
        "audio": {"output_device": 7, "input_device": "cable_monitor"},
        "hotkeys": "not a table",
    }))
    result = ProfileStore(path).load()
    defaults = Profile()
    assert result.profile.levels == defaults.levels
    assert result.profile.audio.output_device == ""  # the default: system default device
    assert result.profile.audio.input_device == "cable_monitor"  # valid values are kept
    assert result.profile.hotkeys == defaults.hotkeys
    text = "\n".join(result.warnings)
    for where in ("levels.vocals", "levels.instrumental", "levels.bypass", "audio.output_device", "[hotkeys]"):
        assert where in text


def test_whole_floats_are_accepted_for_levels(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text("[levels]\nvocals = 50.0\ninstrumental = 12.5\n")
    result = ProfileStore(path).load()
    assert result.profile.levels.vocals == 50
    assert result.profile.levels.instrumental == 100  # 12.5 % is not a whole percentage
    assert any("levels.instrumental" in w for w in result.warnings)


def test_unknown_keys_and_tables_are_kept_on_save(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text(
        'schema_version = 1\nfuture_flag = "x"\n'
        "[levels]\nvocals = 80\nsparkle = 3\n"
        "[plugins.reverb]\nroom = 0.5\n"
    )
    store = ProfileStore(path, debounce_s=0.01)
    store.load()
    store.update("levels", vocals=10)
    store.flush()
    document = tomllib.loads(path.read_text())
    assert document["future_flag"] == "x"
    assert document["levels"] == {"vocals": 10, "sparkle": 3, "instrumental": 100, "bypass": False, "key": 0}
    assert document["plugins"] == {"reverb": {"room": 0.5}}


def test_a_newer_schema_is_read_with_a_warning_and_never_downgraded(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text(f"schema_version = {SCHEMA_VERSION + 1}\n[levels]\nvocals = 30\n")
    store = ProfileStore(path, debounce_s=0.01)
    result = store.load()
    assert result.profile.levels.vocals == 30
    assert any("newer version" in w for w in result.warnings)
    store.update("levels", vocals=40)
    store.flush()
    assert tomllib.loads(path.read_text())["schema_version"] == SCHEMA_VERSION + 1


@pytest.mark.parametrize("content", [b"[levels\nvocals = ", b"\xff\xfe\x00garbage", b"vocals = = 3"])
def test_unreadable_file_is_moved_aside_and_defaults_are_used(tmp_path, content):
    path = tmp_path / "profile.toml"
    path.write_bytes(content)
    store = ProfileStore(path, debounce_s=0.01)
    result = store.load()
    assert result.profile == Profile()
    assert result.error and "not valid TOML" in result.error
    assert result.moved_aside_to is not None
    assert result.moved_aside_to.name.startswith("profile.toml.broken-")
    assert result.moved_aside_to.read_bytes() == content  # the user's file is kept, byte for byte
    assert not path.exists()
    # The app goes on and saves a fresh profile next to the broken one.
    store.update("levels", vocals=0)
    store.flush()
    assert tomllib.loads(path.read_text())["levels"]["vocals"] == 0
    assert result.moved_aside_to.read_bytes() == content


def test_a_file_that_cannot_be_read_is_never_written_over(tmp_path, monkeypatch):
    """E.g. a profile left owned by root after a `sudo` run. The tests run as root, whom file modes
    do not stop, so the read failure is made by patching Path.read_bytes for that one path."""
    path = tmp_path / "profile.toml"
    path.write_text("[levels]\nvocals = 30\n")
    real_read = Path.read_bytes
    def refuse(self):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return real_read(self)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    store = ProfileStore(path, debounce_s=0.01)
    result = store.load()
    assert result.profile == Profile() and result.moved_aside_to is None
    assert "cannot read" in result.error and "will not be saved" in result.error
    store.update("levels", vocals=0)
    store.flush()
    assert path.read_text() == "[levels]\nvocals = 30\n"  # the user's file, untouched
    assert store.last_write_error and "not saving" in store.last_write_error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.toml"]


def test_a_broken_file_that_cannot_be_moved_aside_is_never_written_over(tmp_path, monkeypatch):
    """The move aside fails (patched: as root no directory mode stops it)."""
    path = tmp_path / "profile.toml"
    path.write_bytes(b"[levels\nvocals = ")
    monkeypatch.setattr(ProfileStore, "_move_aside", lambda self: None)
    store = ProfileStore(path, debounce_s=0.01)
    result = store.load()
    assert "not valid TOML" in result.error and "will not be saved" in result.error
    store.update("levels", vocals=0)
    store.flush()
    assert path.read_bytes() == b"[levels\nvocals = "


def test_two_broken_files_in_the_same_second_do_not_overwrite_each_other(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_bytes(b"[[[")
    first = ProfileStore(path).load().moved_aside_to
    path.write_bytes(b"]]]")
    second = ProfileStore(path).load().moved_aside_to
    assert first != second
    assert first.read_bytes() == b"[[[" and second.read_bytes() == b"]]]"


def test_writes_are_debounced_and_atomic(tmp_path):
    path = tmp_path / "profile.toml"
    store = ProfileStore(path, debounce_s=0.3)
    store.load()
    for vocals in range(0, 101, 10):
        store.update("levels", vocals=vocals)
    assert not path.exists()  # nothing written during the burst
    assert wait_for(path.exists, timeout=3)
    assert tomllib.loads(path.read_text())["levels"]["vocals"] == 100
    # Only the profile itself is left: the temporary file was renamed over it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.toml"]


def test_a_slow_timer_write_never_leaves_an_older_profile_on_disk(tmp_path, monkeypatch):
    # The timer thread snapshots the profile and then writes it; a disk that is slow right then
    # (simulated: the real write, 0.3 s late) must not let a later flush return before the file is
    # there, nor let the timer's older snapshot land over the newer one.
    import whamsah_tray.app.profile as profile_module

    real_write = profile_module.write_atomically
    timer_started = threading.Event()

    def slow_on_the_timer(path, data):
        if threading.current_thread() is not threading.main_thread():
            timer_started.set()
            time.sleep(0.3)
        real_write(path, data)

    monkeypatch.setattr(profile_module, "write_atomically", slow_on_the_timer)
    path = tmp_path / "profile.toml"
    store = ProfileStore(path, debounce_s=0.0)
    store.load()
    store.update("levels", vocals=10)
    assert timer_started.wait(2)  # the timer holds the vocals=10 snapshot, still writing
    store.update("levels", vocals=20)
    store.flush()  # what the app does at quit
    assert tomllib.loads(path.read_text())["levels"]["vocals"] == 20
    time.sleep(0.4)  # every write has finished by now
    assert tomllib.loads(path.read_text())["levels"]["vocals"] == 20


def test_update_validates_values_from_the_app(tmp_path):
    store = ProfileStore(tmp_path / "profile.toml", debounce_s=10)
    store.load()
    assert store.update("levels", vocals=999).levels.vocals == 100  # out of bounds → default
    assert store.update("levels", vocals=150).levels.vocals == 150  # the declared maximum


def test_an_unchanged_update_writes_nothing(tmp_path):
    path = tmp_path / "profile.toml"
    store = ProfileStore(path, debounce_s=0.01)
    store.load()
    store.update("levels", vocals=100)
    store.flush()
    assert not path.exists()
