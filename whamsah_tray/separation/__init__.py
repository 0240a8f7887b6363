"""The separation core: networks, weights, streaming and offline inference.

Pure numpy/torch: nothing here knows about audio devices, threads, the profile or the UI.
Importing it does not import torch: a model with numpy weights runs without it (registry.py).
"""

from whamsah_tray.separation.offline import separate_array
from whamsah_tray.separation.registry import (
    DEFAULT_MODEL,
    LoadedModel,
    ModelInfo,
    create_untrained_model,
    find_model,
    list_models,
    load_model,
)
from whamsah_tray.separation.streaming import StreamingSeparator

__all__ = [
    "DEFAULT_MODEL",
    "LoadedModel",
    "ModelInfo",
    "StreamingSeparator",
    "create_untrained_model",
    "find_model",
    "list_models",
    "load_model",
    "separate_array",
]
