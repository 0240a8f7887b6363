"""Installed models: JSON manifests beside weights files in `weights/`, and loading them safely.

A manifest `weights/<name>.json` names the architecture, its config, the weights file, its sha256,
the sample rate and latency, the training data and license, and measured figures. Loading checks
the hash, uses `torch.load(weights_only=True)` and raises `ModelLoadingError` with a one-line reason.

A manifest may also name a torch-free weights file (`numpy_weights`, a `.npz` of the same numbers,
with its `numpy_sha256`; written by `python -m whamsah_tray.separation.numpy_export`) for an
architecture that has a numpy inference path (models.NUMPY_PATHS). `load_model` then builds that
path from it and never imports torch: the tray, `run`, `play` and `separate` stay free of it.
`torch_module=True` asks for the torch network anyway (training, export, comparisons).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from whamsah_tray.errors import ModelLoadingError
from whamsah_tray.separation.models import (
    ARCHITECTURE_NAMES,
    NUMPY_PATHS,
    build_network,
    numpy_path_class,
)

DEFAULT_MODEL = "whamsah-rt"
WEIGHTS_ENV = "WHAMSAH_TRAY_WEIGHTS"
# Names that `create_untrained_model` accepts besides architecture names.
UNTRAINED_ALIASES = {"whamsah-rt": "mask-gru", "whamsahnet": "whamsahnet"}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    architecture: str
    config: dict[str, Any]
    sample_rate: int
    latency_samples: int
    weights_file: str = ""
    sha256: str = ""
    numpy_weights_file: str = ""  # "" = none: the torch weights are loaded
    numpy_sha256: str = ""
    description: str = ""
    training_data: str = ""
    license: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    is_default: bool = False
    manifest_path: Path | None = None

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate

    @classmethod
    def from_manifest(cls, path: Path) -> "ModelInfo":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                name=str(data["name"]),
                architecture=str(data["architecture"]),
                config=dict(data.get("config", {})),
                sample_rate=int(data["sample_rate"]),
                latency_samples=int(data["latency_samples"]),
                weights_file=str(data["weights"]),
                sha256=str(data["sha256"]).lower(),
                numpy_weights_file=str(data.get("numpy_weights", "")),
                numpy_sha256=str(data.get("numpy_sha256", "")).lower(),
                description=str(data.get("description", "")),
                training_data=str(data.get("training_data", "")),
                license=str(data.get("license", "")),
                figures=dict(data.get("figures", {})),
                is_default=bool(data.get("default", False)),
                manifest_path=path,
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelLoadingError(f"unreadable model manifest {path.name}: {error}") from error


@dataclass
class LoadedModel:
    info: ModelInfo
    network: Any  # a torch StreamingModel, or a numpy path (NumpyMaskGRU) with the same streaming API


REPO_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"  # the source tree's weights/
INSTALLED_WEIGHTS = Path("share") / "whamsah-tray" / "weights"  # under a prefix: pyproject's data-files


def weights_dirs() -> list[Path]:
    """Where manifests are looked for, first match wins: $WHAMSAH_TRAY_WEIGHTS alone when it is
    set (an override, e.g. for tests); else the source tree's weights/, then the installed
    share/whamsah-tray/weights (the wheel's data files: under the environment's prefix, or the
    user's base for `pip install --user`)."""
    if os.environ.get(WEIGHTS_ENV):
        return [Path(os.environ[WEIGHTS_ENV])]
    dirs = [REPO_WEIGHTS_DIR, Path(sys.prefix) / INSTALLED_WEIGHTS]
    try:
        user_data = Path(sysconfig.get_path("data", sysconfig.get_preferred_scheme("user")))
    except (KeyError, ValueError):  # no user scheme on this platform/Python
        return dirs
    if user_data / INSTALLED_WEIGHTS not in dirs:
        dirs.append(user_data / INSTALLED_WEIGHTS)
    return dirs


def list_models(weights_dir: Path | None = None) -> list[ModelInfo]:
    """Installed models, the default first. Unreadable manifests are skipped."""
    found: dict[str, ModelInfo] = {}
    for directory in [weights_dir] if weights_dir else weights_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.json")):
            try:
                info = ModelInfo.from_manifest(path)
            except ModelLoadingError:
                continue
            found.setdefault(info.name, info)
    return sorted(found.values(), key=lambda info: (not info.is_default, info.name))


def find_model(name: str | None = None, weights_dir: Path | None = None) -> ModelInfo:
    models = list_models(weights_dir)
    if name is None:
        defaults = [info for info in models if info.is_default] or [
            info for info in models if info.name == DEFAULT_MODEL]
        if not defaults:
            where = weights_dir or weights_dirs()[0]
            raise ModelLoadingError(f"no default model installed (no manifest marked default in {where})")
        return defaults[0]
    for info in models:
        if info.name == name:
            return info
    known = ", ".join(info.name for info in models) or "none"
    raise ModelLoadingError(f"unknown model '{name}' (installed: {known})")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(name: str | None = None, weights_dir: Path | None = None, *,
               torch_module: bool = False) -> LoadedModel:
    """The named model (or the default), ready for inference: through its numpy path, without
    torch, where the manifest names numpy weights; else (or with `torch_module`) the torch network.
    Raises ModelLoadingError."""
    info = find_model(name, weights_dir)
    return load_from_info(info, torch_module=torch_module)


def load_from_info(info: ModelInfo, *, torch_module: bool = False) -> LoadedModel:
    if info.numpy_weights_file and info.architecture in NUMPY_PATHS and not torch_module:
        return _load_numpy(info)
    return _load_torch(info)


def _checked_file(info: ModelInfo, file_name: str, sha256: str) -> Path:
    assert info.manifest_path is not None
    weights = info.manifest_path.parent / file_name
    if not weights.is_file():
        raise ModelLoadingError(f"model '{info.name}': weights file {weights} is missing")
    if sha256_of(weights) != sha256:
        raise ModelLoadingError(f"model '{info.name}': weights file {weights.name} is corrupt (sha256 mismatch)")
    return weights


def _check_latency(info: ModelInfo, network) -> None:
    latency = network.delay + network.hop
    if latency != info.latency_samples or network.sample_rate != info.sample_rate:
        raise ModelLoadingError(
            f"model '{info.name}': manifest says {info.latency_samples} samples at {info.sample_rate} Hz, "
            f"the network has {latency} at {network.sample_rate} Hz")


def _load_numpy(info: ModelInfo) -> LoadedModel:
    weights = _checked_file(info, info.numpy_weights_file, info.numpy_sha256)
    try:
        with np.load(weights, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as error:  # numpy and zipfile raise many types for a bad archive
        raise ModelLoadingError(f"model '{info.name}': unreadable weights ({type(error).__name__})") from error
    try:
        network = numpy_path_class(info.architecture)(arrays, info.config)
    except (KeyError, ValueError, IndexError, TypeError) as error:
        raise ModelLoadingError(f"model '{info.name}': weights do not fit the architecture ({error})") from error
    _check_latency(info, network)
    return LoadedModel(info=info, network=network)


def _load_torch(info: ModelInfo) -> LoadedModel:
    weights = _checked_file(info, info.weights_file, info.sha256)
    if info.architecture not in ARCHITECTURE_NAMES:
        raise ModelLoadingError(f"model '{info.name}': unknown architecture '{info.architecture}'")
    import torch  # only here: a numpy-path model never needs it

    from whamsah_tray.separation.threads import sync_torch_threads

    sync_torch_threads()
    try:
        network = build_network(info.architecture, info.config)
    except (TypeError, ValueError) as error:
        raise ModelLoadingError(f"model '{info.name}': bad config: {error}") from error
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad archive
        raise ModelLoadingError(f"model '{info.name}': unreadable weights ({type(error).__name__})") from error
    try:
        network.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadingError(f"model '{info.name}': weights do not fit the architecture ({first_line})") from error
    _check_latency(info, network)
    network.eval()
    return LoadedModel(info=info, network=network)


def create_untrained_model(architecture: str, config: dict[str, Any] | None = None, seed: int = 0) -> LoadedModel:
    """A model with freshly initialised (random) weights: for tests and training, never shipped.
    `architecture` is an architecture name or 'whamsah-rt' / 'whamsahnet'."""
    architecture = UNTRAINED_ALIASES.get(architecture, architecture)
    if architecture not in ARCHITECTURE_NAMES:
        raise ModelLoadingError(f"unknown architecture '{architecture}'")
    import torch

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        network = build_network(architecture, config).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    info = ModelInfo(
        name=f"untrained-{architecture}", architecture=architecture, config=network.config,
        sample_rate=network.sample_rate, latency_samples=network.delay + network.hop,
        description="untrained: random weights, for tests only",
    )
    return LoadedModel(info=info, network=network)
