"""An STFT model whose vocal mask is a constant (1 by default): its "vocals" are the input, delayed.

Not a separator: it proves the plumbing (framing, overlap-add, latency, reconstruction) in tests.
"""

from __future__ import annotations

from typing import Any

import torch

from whamsah_tray.separation.models.spectral import SpectralMaskModel


class ConstantMaskModel(SpectralMaskModel):
    architecture = "identity"

    def __init__(self, mask_value: float = 1.0, **config: Any) -> None:
        super().__init__(mask_value=mask_value, **config)
        self.mask_value = float(mask_value)

    def masks(self, spec: torch.Tensor, net_state: Any) -> tuple[torch.Tensor, Any]:
        return torch.full(spec.shape, self.mask_value, dtype=torch.float32, device=spec.device), net_state
