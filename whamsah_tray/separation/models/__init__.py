"""Architectures by name. A model = an architecture + its config + a weights file (see registry).

Importing this package costs nothing: the torch architectures are imported when one is asked
for (`architecture_class`, `build_network`, `ARCHITECTURES`), so that a process running a model
through its numpy path (`NUMPY_PATHS`) never loads torch.
"""

from __future__ import annotations

import importlib
from typing import Any

CHANNELS = 2  # every network here is stereo; mono is duplicated, more channels go in pairs

# name -> (module, class): the torch networks (training, and inference where no numpy path exists).
_TORCH_ARCHITECTURES = {
    "identity": ("whamsah_tray.separation.models.identity", "ConstantMaskModel"),
    "mask-gru": ("whamsah_tray.separation.models.mask_gru", "MaskGRU"),
    "whamsahnet": ("whamsah_tray.separation.models.whamsahnet", "WHAMSAHNet"),
}
# name -> (module, class): torch-free inference of an architecture, built from a numpy weights file.
NUMPY_PATHS = {
    "mask-gru": ("whamsah_tray.separation.models.mask_gru_numpy", "NumpyMaskGRU"),
}
ARCHITECTURE_NAMES = frozenset(_TORCH_ARCHITECTURES)


def _load(where: tuple[str, str]):
    module, name = where
    return getattr(importlib.import_module(module), name)


def architecture_class(architecture: str):
    """The torch class of an architecture (imports torch; KeyError for an unknown one)."""
    return _load(_TORCH_ARCHITECTURES[architecture])


def numpy_path_class(architecture: str):
    """The numpy inference class of an architecture (torch-free; KeyError where there is none)."""
    return _load(NUMPY_PATHS[architecture])


def build_network(architecture: str, config: dict[str, Any] | None = None):
    """An untrained torch network of that architecture (raises KeyError for an unknown one)."""
    return architecture_class(architecture)(**(config or {}))


def __getattr__(name: str):
    # The torch-backed names, resolved (and torch imported) on first use only.
    if name == "ARCHITECTURES":
        return {architecture: architecture_class(architecture) for architecture in _TORCH_ARCHITECTURES}
    if name == "StreamingModel":
        return _load(("whamsah_tray.separation.models.base", "StreamingModel"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ARCHITECTURES", "ARCHITECTURE_NAMES", "CHANNELS", "NUMPY_PATHS", "StreamingModel",
           "architecture_class", "build_network", "numpy_path_class"]
