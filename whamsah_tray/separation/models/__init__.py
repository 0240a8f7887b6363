"""Architectures by name. A model = an architecture + its config + a weights file (see registry)."""

from __future__ import annotations

from typing import Any

from whamsah_tray.separation.models.base import CHANNELS, StreamingModel
from whamsah_tray.separation.models.identity import ConstantMaskModel
from whamsah_tray.separation.models.mask_gru import MaskGRU
from whamsah_tray.separation.models.whamsahnet import WHAMSAHNet

ARCHITECTURES: dict[str, type[StreamingModel]] = {
    ConstantMaskModel.architecture: ConstantMaskModel,
    MaskGRU.architecture: MaskGRU,
    WHAMSAHNet.architecture: WHAMSAHNet,
}


def build_network(architecture: str, config: dict[str, Any] | None = None) -> StreamingModel:
    """An untrained network of that architecture (raises KeyError for an unknown one)."""
    return ARCHITECTURES[architecture](**(config or {}))


__all__ = ["ARCHITECTURES", "CHANNELS", "StreamingModel", "build_network"]
