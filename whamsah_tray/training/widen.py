"""Start a wider mask-gru from a trained narrower one, computing exactly what the narrow one did.

The narrow network's weights go into the first `hidden` units of every layer of the wide one. The
new units keep their fresh initialisation for what flows into them, and everything that flows out
of them (into an old unit, the next layer or the mask head) starts at zero: the wide network's
masks equal the narrow one's at step 0 (tested), and training grows the new units from there.
Gradients reach the zeroed weights at once (the new units' outputs are not zero), so they start
to matter after the first steps.

PyTorch's GRU keeps its three gates (r, z, n) as stacked blocks of `hidden` rows, so each block
is copied separately. Never imported by the app.
"""

from __future__ import annotations

import torch

from whamsah_tray.separation.models.mask_gru import MaskGRU


def hidden_size(state: dict[str, torch.Tensor]) -> int:
    """The hidden width of a mask-gru state dict."""
    return state["project.weight"].shape[0]


def _copy_gates(wide: torch.Tensor, narrow: torch.Tensor, hidden: int, wide_hidden: int,
                columns: slice | None) -> None:
    """Copy a GRU matrix or bias (3 stacked gate blocks) gate by gate; zero the wide rows' columns
    that read the new units."""
    for gate in range(3):
        rows = slice(gate * wide_hidden, gate * wide_hidden + hidden)
        source = narrow[gate * hidden:(gate + 1) * hidden]
        if columns is None:
            wide[rows] = source
        else:
            wide[rows] = 0.0
            wide[rows, columns] = source


@torch.no_grad()
def widen_into(network: MaskGRU, state: dict[str, torch.Tensor]) -> None:
    """Load the narrower mask-gru `state` into `network` (same bands, layers and kernel, wider)."""
    hidden, wide = hidden_size(state), network.hidden
    if hidden > wide:
        raise ValueError(f"cannot widen {hidden} units into {wide}")
    old = slice(0, hidden)  # the new units' incoming weights keep their initialisation
    params = network.state_dict()  # tensors sharing the network's storage: written in place

    params["feature_mean"].copy_(state["feature_mean"])
    params["feature_std"].copy_(state["feature_std"])
    # Projection: new output units keep their initialisation (they feed only new units).
    params["project.weight"][old] = state["project.weight"]
    params["project.bias"][old] = state["project.bias"]
    # Time convolution: old units read only old units.
    params["encoder.0.weight"][old] = 0.0
    params["encoder.0.weight"][old, old] = state["encoder.0.weight"]
    params["encoder.0.bias"][old] = state["encoder.0.bias"]
    for layer in range(network.gru_layers):
        for kind in ("ih", "hh"):
            _copy_gates(params[f"gru.weight_{kind}_l{layer}"], state[f"gru.weight_{kind}_l{layer}"],
                        hidden, wide, old)
            _copy_gates(params[f"gru.bias_{kind}_l{layer}"], state[f"gru.bias_{kind}_l{layer}"],
                        hidden, wide, None)
    # Head: its input is [GRU output, conv output], each now `wide` long.
    first = params["head.0.weight"]
    first[old] = 0.0
    first[old, old] = state["head.0.weight"][:, :hidden]
    first[old, wide:wide + hidden] = state["head.0.weight"][:, hidden:]
    params["head.0.bias"][old] = state["head.0.bias"]
    last = params["head.2.weight"]
    last[:] = 0.0
    last[:, old] = state["head.2.weight"]
    params["head.2.bias"].copy_(state["head.2.bias"])


def with_more_inputs(state: dict[str, torch.Tensor], extra: int) -> dict[str, torch.Tensor]:
    """`state` of a mask-gru given `extra` input features more (e.g. phase features): the new
    features' projection weights zero, their standardisation 0 / 1, so the masks are unchanged."""
    weight = state["project.weight"]
    return {**state,
            "feature_mean": torch.cat([state["feature_mean"], weight.new_zeros(extra, 1)]),
            "feature_std": torch.cat([state["feature_std"], weight.new_ones(extra, 1)]),
            "project.weight": torch.cat([weight, weight.new_zeros(weight.shape[0], extra, 1)], dim=1)}


def with_longer_kernel(state: dict[str, torch.Tensor], kernel: int) -> dict[str, torch.Tensor]:
    """`state` of a mask-gru given a time convolution of `kernel` taps over the same past frames,
    i.e. more look-ahead: the old taps stay on the frames they read, the new look-ahead taps start
    at zero. The convolution's output is then the old one `kernel - old kernel` frames later, so
    the masks are the old ones for each frame once the GRU has left behind its extra steps of
    start-up (tested)."""
    weight = state["encoder.0.weight"]
    extra = kernel - weight.shape[-1]
    return {**state, "encoder.0.weight": torch.cat([weight, weight.new_zeros(*weight.shape[:2], extra)], dim=-1)}


def load_initial_weights(network: torch.nn.Module, state: dict[str, torch.Tensor]) -> str:
    """Load `state` into `network`: as it is, or grown when the network is a mask-gru with more
    input features (new ones start unused), more look-ahead taps in its time convolution over the
    same past frames (new ones start at zero), more hidden units and/or a sub-band refiner the
    weights lack (it starts with zero corrections). Returns a line saying which."""
    if not isinstance(network, MaskGRU) or "project.weight" not in state:
        network.load_state_dict(state)
        return "loaded as it is"
    how = []
    if network.refiner is not None and not any(key.startswith("refiner.") for key in state):
        # A new sub-band refiner keeps its initialisation: its corrections start at zero.
        state = {**state, **{key: value for key, value in network.state_dict().items() if key.startswith("refiner.")}}
        how.append("a new sub-band refiner, its corrections zero at first")
    extra = network.feature_mean.shape[0] - state["feature_mean"].shape[0]
    if extra > 0:
        state = with_more_inputs(state, extra)
        how.append(f"{extra} new input features, unused at first")
    kernel = state["encoder.0.weight"].shape[-1]
    if kernel < network.conv_kernel:
        state = with_longer_kernel(state, network.conv_kernel)
        how.append(f"time convolution grown from {kernel} to {network.conv_kernel} taps, the new look-ahead taps zero")
    if hidden_size(state) < network.hidden:
        widen_into(network, state)
        how.append(f"widened from {hidden_size(state)} to {network.hidden} hidden units")
    else:
        network.load_state_dict(state)
    return ", ".join(how) or "loaded as it is"
