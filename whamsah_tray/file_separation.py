"""Separate an audio file into DIR/vocals.<fmt> and DIR/instrumental.<fmt>, all or nothing.

The file-level wrapper around the separation core (`separate_array`, the same streaming path the
live engine uses): check where the stems will go, read the input, load the model, separate, then
write both stems to temporary files beside their destinations and rename them only when both are
complete. The input file is never written: an output folder that would overwrite it is refused.

Runs on the caller's thread (the CLI's main thread); it blocks for as long as the separation takes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whamsah_tray.audio_io import read_audio, write_audio_files
from whamsah_tray.errors import AudioFileError, ModelLoadingError

OUTPUT_FORMATS = ("wav", "flac")
STEMS = ("vocals", "instrumental")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SeparatedFiles:
    vocals: Path
    instrumental: Path
    sample_rate: int
    frames: int
    channels: int
    model_name: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)  # hard links, bind mounts
    return False


def _nearest_existing(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate
    return Path(folder.anchor or ".")


def _check_folder_writable(out_dir: Path) -> None:
    """Raises AudioFileError unless out_dir is (or can be created as) a folder we can write in.

    Writes and removes a probe file rather than trusting permission bits (root ignores them, a
    read-only file system does not)."""
    existing = _nearest_existing(out_dir)
    if not existing.is_dir():
        raise AudioFileError(f"cannot write to --out '{out_dir}': '{existing}' is not a folder")
    # A missing out_dir is created when the stems are written: its nearest existing parent must
    # accept a new entry.
    probe_dir = existing
    try:
        handle, probe = tempfile.mkstemp(prefix=".whamsah-probe-", dir=probe_dir)
    except OSError as error:
        raise AudioFileError(
            f"cannot write to --out '{out_dir}': {error.strerror or error} ('{probe_dir}')"
        ) from error
    os.close(handle)
    os.unlink(probe)


def plan_outputs(input_path: str | os.PathLike, out_dir: str | os.PathLike, format: str = "wav") -> dict[str, Path]:
    """The stem paths {"vocals": DIR/vocals.<fmt>, "instrumental": ...}, after checking that they
    can be written and would not overwrite the input. Raises AudioFileError."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    if format not in OUTPUT_FORMATS:
        raise AudioFileError(f"unsupported output format '{format}' (choose {' or '.join(OUTPUT_FORMATS)})")
    outputs = {stem: out_dir / f"{stem}.{format}" for stem in STEMS}
    for path in outputs.values():
        if input_path.exists() and _same_file(path, input_path):
            raise AudioFileError(
                f"--out '{out_dir}' would overwrite the input '{input_path}' with {path.name}; "
                "choose another output folder"
            )
        if path.exists() and not path.is_file():
            raise AudioFileError(f"cannot write '{path}': it exists and is not a regular file")
    _check_folder_writable(out_dir)
    return outputs


def _make_folder(out_dir: Path) -> list[Path]:
    """Creates out_dir and missing parents; returns those it created, deepest first."""
    created = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AudioFileError(f"cannot create --out '{out_dir}': {error.strerror or error}") from error
    return created


def separate_file(
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    model=None,
    model_name: str | None = None,
    format: str = "wav",
    progress: Progress | None = None,
) -> SeparatedFiles:
    """Separates `input_path` into out_dir/vocals.<format> and out_dir/instrumental.<format>, at the
    input's sample rate, length and channel count.

    `model` is a LoadedModel; when None, `load_model(model_name)` (the default model when
    model_name is None) is loaded after the input was read, so bad input is reported first.
    `progress(done_frames, total_frames)` is called as separation advances.
    Raises AudioFileError / ModelLoadingError; leaves no partial output behind.
    """
    outputs = plan_outputs(input_path, out_dir, format)
    audio, sample_rate = read_audio(input_path)
    return separate_to_files(audio, sample_rate, outputs, model, model_name, format, progress)


def separate_to_files(
    audio: np.ndarray,
    sample_rate: int,
    outputs: dict[str, Path],
    model=None,
    model_name: str | None = None,
    format: str = "wav",
    progress: Progress | None = None,
    key: int = 0,
) -> SeparatedFiles:
    """Separates audio (frames, channels) already read and writes the stems to `outputs` (from
    plan_outputs), creating their folder if needed; see separate_file. `key`: both stems transposed
by that many semitones (-6..+6; their sum is the transposed input)."""
    from whamsah_tray.separation import load_model, separate_array

    if model is None:
        model = load_model(model_name)
    try:
        vocals, instrumental = separate_array(audio, sample_rate, model, progress=progress, key=key)
    except ValueError as error:  # a key on a model without a spectral path (WHAMSAHNet)
        if not key:
            raise
        raise ModelLoadingError(f"model '{model.info.name}': {error}") from error
    out_dir = outputs["vocals"].parent
    created = _make_folder(out_dir)
    try:
        write_audio_files(
            {outputs["vocals"]: vocals, outputs["instrumental"]: instrumental}, sample_rate, format
        )
    except BaseException:
        for folder in created:  # deepest first; only folders we made, only if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return SeparatedFiles(
        vocals=outputs["vocals"], instrumental=outputs["instrumental"], sample_rate=sample_rate,
        frames=audio.shape[0], channels=audio.shape[1], model_name=model.info.name,
    )
