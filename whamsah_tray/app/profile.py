"""The user's profile: devices, levels, bypass, model, hotkeys, start-at-login, Linux cable
preferences and the file dialog's last folder, kept in a TOML file in the user's config dir.

`Profile` is a frozen dataclass whose fields declare their default and bounds. `ProfileStore` owns
the file: it reads it with tomllib, validates every field (an invalid value falls back to its
default with a warning), keeps keys it does not know, moves an unreadable file aside as
`profile.toml.broken-<timestamp>` and starts from defaults, and writes changes atomically
(temporary file + os.replace) after a short debounce so that a burst of hotkey presses is one write.

Threads: `ProfileStore.update` is called from the tray's GUI thread, the hotkey listener thread and
engine observer callbacks; one lock guards the current profile and the raw document. The debounced
write runs on a `threading.Timer` thread and takes the same lock only to snapshot the document;
a second lock, held from snapshot to rename, keeps writes in order (never an older one last).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from whamsah_tray.engine.api import DEFAULT_LEVEL_PERCENT, MAX_KEY, MAX_LEVEL_PERCENT, MIN_LEVEL_PERCENT

log = logging.getLogger(__name__)

APP_NAME = "whamsah-tray"
PROFILE_FILE_NAME = "profile.toml"
SCHEMA_VERSION = 1
SAVE_DEBOUNCE_S = 0.5


def _spec(default: Any, *, minimum: float | None = None, maximum: float | None = None,
          choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its default and bounds (or allowed values) in the field's metadata."""
    return field(default=default, metadata={"min": minimum, "max": maximum, "choices": choices})


@dataclass(frozen=True)
class AudioSettings:
    """Devices are remembered by name; an empty name means the system default."""

    host_api: str = _spec("")
    input_device: str = _spec("")
    output_device: str = _spec("")
    # How much buffering the live engine runs with (engine.session.LATENCY_PRESETS): "low" for the
    # shortest delay on a quiet machine, "safe" for a busy one (games, video calls) that would
    # glitch; "auto" adapts the margin to the load (balanced's buffers, up to 50 ms more).
    latency: str = _spec("balanced", choices=("auto", "low", "balanced", "safe"))


@dataclass(frozen=True)
class LevelSettings:
    vocals: int = _spec(DEFAULT_LEVEL_PERCENT, minimum=MIN_LEVEL_PERCENT, maximum=MAX_LEVEL_PERCENT)
    instrumental: int = _spec(DEFAULT_LEVEL_PERCENT, minimum=MIN_LEVEL_PERCENT, maximum=MAX_LEVEL_PERCENT)
    bypass: bool = _spec(False)
    key: int = _spec(0, minimum=-MAX_KEY, maximum=MAX_KEY)  # semitones


@dataclass(frozen=True)
class ModelSettings:
    """An installed model's name (see `whamsah-tray models`); empty means the default model."""

    name: str = _spec("")


@dataclass(frozen=True)
class HotkeySettings:
    """pynput GlobalHotKeys syntax; an empty string disables that hotkey."""

    toggle_vocals: str = _spec("<ctrl>+<alt>+v")
    vocals_up: str = _spec("<ctrl>+<alt>+<up>")
    vocals_down: str = _spec("<ctrl>+<alt>+<down>")
    instrumental_up: str = _spec("<ctrl>+<alt>+<right>")
    instrumental_down: str = _spec("<ctrl>+<alt>+<left>")
    bypass: str = _spec("<ctrl>+<alt>+b")
    key_up: str = _spec("<ctrl>+<alt>+<page_up>")
    key_down: str = _spec("<ctrl>+<alt>+<page_down>")
    play_file: str = _spec("<ctrl>+<alt>+o")


@dataclass(frozen=True)
class StartupSettings:
    start_at_login: bool = _spec(False)
    welcomed: bool = _spec(False)  # the first start's "where the icon is" was shown


@dataclass(frozen=True)
class LinuxCableSettings:
    """Our own virtual cable (a PulseAudio/PipeWire null sink), Linux only."""

    create_at_start: bool = _spec(False)
    make_default_sink: bool = _spec(False)


@dataclass(frozen=True)
class FileDialogSettings:
    last_folder: str = _spec("")


@dataclass(frozen=True)
class Profile:
    """Everything the app remembers between runs. Each section is a TOML table of the same name."""

    audio: AudioSettings = field(default_factory=AudioSettings)
    levels: LevelSettings = field(default_factory=LevelSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    hotkeys: HotkeySettings = field(default_factory=HotkeySettings)
    startup: StartupSettings = field(default_factory=StartupSettings)
    linux_cable: LinuxCableSettings = field(default_factory=LinuxCableSettings)
    file_dialog: FileDialogSettings = field(default_factory=FileDialogSettings)

    def replace(self, section: str, **changes: Any) -> "Profile":
        """A copy with fields of one section changed, e.g. `replace("levels", vocals=0)`."""
        current = getattr(self, section)
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **changes)})


# Section name → its dataclass (with `from __future__ import annotations` field types are strings).
SECTIONS: dict[str, type] = {
    "audio": AudioSettings,
    "levels": LevelSettings,
    "model": ModelSettings,
    "hotkeys": HotkeySettings,
    "startup": StartupSettings,
    "linux_cable": LinuxCableSettings,
    "file_dialog": FileDialogSettings,
}


def default_profile_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / PROFILE_FILE_NAME


def _validate(section: str, f: dataclasses.Field, value: Any, warnings: list[str]) -> Any:
    """The value if it fits the field's type and bounds, else the default (with a warning)."""
    default = f.default
    expected = type(default)
    where = f"{section}.{f.name}"
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        # TOML floats such as 50.0 are accepted when whole; bools are not numbers here.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        warnings.append(f"{where} = {value!r} is not a {expected.__name__}; using {default!r}")
        return default
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        warnings.append(f"{where} = {value!r} is not one of {', '.join(choices)}; using {default!r}")
        return default
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        warnings.append(f"{where} = {value!r} is outside {lo}..{hi}; using {default!r}")
        return default
    return value


def profile_from_document(document: dict[str, Any]) -> tuple[Profile, list[str]]:
    """Build a Profile from a parsed TOML document; returns it and the warnings for bad values."""
    warnings: list[str] = []
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        raw = document.get(name, {})
        if not isinstance(raw, dict):
            warnings.append(f"[{name}] is not a table; using its defaults")
            raw = {}
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in raw:
                values[f.name] = _validate(name, f, raw[f.name], warnings)
        sections[name] = cls(**values)
    version = document.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        warnings.append(f"schema_version = {version!r} is not a positive integer; reading as version {SCHEMA_VERSION}")
    elif version > SCHEMA_VERSION:
        warnings.append(
            f"profile was written by a newer version (schema {version} > {SCHEMA_VERSION}); "
            "settings this version knows are used, the others are kept"
        )
    return Profile(**sections), warnings


def document_from_profile(profile: Profile, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The TOML document for `profile`, keeping every key of `base` that the profile does not own."""
    document = copy.deepcopy(base) if base else {}
    version = document.get("schema_version")
    if not (isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION):
        document["schema_version"] = SCHEMA_VERSION  # never downgrade a newer file's version
    for name in SECTIONS:
        table = document.get(name)
        if not isinstance(table, dict):
            table = {}
        table.update(dataclasses.asdict(getattr(profile, name)))
        document[name] = table
    return document


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise


@dataclass
class LoadResult:
    profile: Profile
    warnings: list[str]
    # Where an unreadable profile was moved to, if it was; the user must be told.
    moved_aside_to: Path | None = None
    error: str | None = None


class ProfileStore:
    """Owns profile.toml: load once, then `update()` on every change; writes are debounced."""

    def __init__(self, path: Path | None = None, debounce_s: float = SAVE_DEBOUNCE_S):
        self.path = Path(path) if path is not None else default_profile_path()
        self.debounce_s = debounce_s
        self._lock = threading.Lock()
        # Held by a flush from its snapshot to the end of its write: writes land in the order of
        # their snapshots (a timer's older snapshot can never replace a newer file), and a flush
        # returns only once any write in flight is on disk. `update()` never waits for it.
        self._write_lock = threading.Lock()
        self._profile = Profile()
        self._document: dict[str, Any] = {}
        self._timer: threading.Timer | None = None
        self._dirty = False
        self.last_write_error: str | None = None
        # Set when the file is there but could not be read or moved aside: writing would replace
        # it, so this session's changes are not saved (the user was told at load).
        self._kept_unwritten: str | None = None

    @property
    def profile(self) -> Profile:
        with self._lock:  # a reference read; the lock orders it after a concurrent update
            return self._profile

    def load(self) -> LoadResult:
        """Read the file. Missing → defaults. Unreadable → moved aside, defaults, error set."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            with self._lock:
                self._profile, self._document, self._kept_unwritten = Profile(), {}, None
            return LoadResult(Profile(), [])
        except OSError as error:
            # Cannot even read it (permissions, a directory...): leave it alone, use defaults, and
            # never write over it.
            reason = f"cannot read {self.path}: {error.strerror or error}"
            with self._lock:
                self._profile, self._document = Profile(), {}
                self._kept_unwritten = reason
            return LoadResult(Profile(), [], error=f"{reason}; settings changed now will not be saved")
        try:
            document = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            moved = self._move_aside()
            reason = f"{self.path} is not valid TOML ({error})"
            with self._lock:
                self._profile, self._document = Profile(), {}
                self._kept_unwritten = None if moved else f"{reason} and could not be moved aside"
            if not moved:
                reason += "; it could not be moved aside, so settings changed now will not be saved"
            return LoadResult(Profile(), [], moved_aside_to=moved, error=reason)
        profile, warnings = profile_from_document(document)
        with self._lock:
            self._profile, self._document, self._kept_unwritten = profile, document, None
        for warning in warnings:
            log.warning("profile: %s", warning)
        return LoadResult(profile, warnings)

    def _move_aside(self) -> Path | None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.broken-{stamp}-{n}")
        try:
            os.replace(self.path, target)
        except OSError as error:
            log.error("could not move the broken profile aside: %s", error)
            return None
        log.warning("profile %s was unreadable; moved it to %s and started from defaults", self.path, target)
        return target

    def update(self, section: str, **changes: Any) -> Profile:
        """Change fields of one section and schedule a write. Returns the new profile."""
        cls = SECTIONS[section]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        checked = {}
        for key, value in changes.items():
            warnings: list[str] = []
            checked[key] = _validate(section, fields[key], value, warnings)
            for warning in warnings:
                log.warning("profile: %s", warning)
        with self._lock:
            new = self._profile.replace(section, **checked)
            if new == self._profile:
                return new
            self._profile = new
            self._dirty = True
            self._schedule_locked()
        return new

    def _schedule_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.debounce_s, self.flush)
        self._timer.daemon = True
        self._timer.start()

    def flush(self) -> None:
        """Write now if anything changed since the last write (called at quit and by the timer)."""
        with self._write_lock:
            self._write_if_changed()

    def _write_if_changed(self) -> None:
        # Called with the write lock held (flush).
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._dirty:
                return
            if self._kept_unwritten:
                self.last_write_error = f"not saving the profile: {self._kept_unwritten}"
                return
            document = document_from_profile(self._profile, self._document)
            self._document = document
            self._dirty = False
        try:
            write_atomically(self.path, tomli_w.dumps(document).encode("utf-8"))
            self.last_write_error = None
        except OSError as error:
            self.last_write_error = f"cannot save the profile to {self.path}: {error.strerror or error}"
            log.error("%s", self.last_write_error)
            with self._lock:
                self._dirty = True

    def save_now(self) -> None:
        """Write the current profile even if unchanged (used to create the file at first start)."""
        with self._lock:
            self._dirty = True
        self.flush()
