"""The interface every separation network implements, so that one streaming path serves them all.

A `StreamingModel` consumes stereo audio in whole hops and returns its vocal estimate for the same
number of samples, `delay` samples late:

    vocals, state = model.stream(x, state)      # x: (batch, 2, n * hop) -> vocals: (batch, 2, n * hop)

`vocals[..., i]` estimates the vocals of input sample `i - delay` (counting from the first sample
ever given to this state). The streaming separator turns this into the blocks-of-any-size API and
derives the instrumental as `delayed input - vocals`, so reconstruction never depends on the network.

Pure torch: no devices, threads, files or UI. Runs on whichever thread calls it (the engine's
inference worker, the CLI, or the trainer).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from whamsah_tray.separation.models import CHANNELS

__all__ = ["CHANNELS", "StreamingModel"]


class StreamingModel(nn.Module):
    """Base class: subclasses set `sample_rate`, `hop`, `delay` and implement `init_state`/`stream`."""

    architecture: str = ""
    sample_rate: int = 44100
    hop: int = 1
    delay: int = 0

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = dict(config)

    def init_state(self, batch: int) -> dict[str, Any]:
        """A fresh state for `batch` independent stereo streams (silence before the first sample)."""
        raise NotImplementedError

    def stream(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """x: (batch, 2, n * hop) -> vocals (batch, 2, n * hop), `delay` samples late."""
        raise NotImplementedError

    def inference_path(self) -> Any | None:
        """An equivalent of init_state/stream on float32 numpy arrays that is faster for inference
        (a snapshot of the current weights), or None: the streaming separator then uses stream()."""
        return None
