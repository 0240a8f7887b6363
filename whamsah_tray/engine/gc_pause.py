"""Keeping Python's cyclic garbage collector from pausing the audio.

A full collection walks every object the collector tracks: about 170 000 once torch, sounddevice
and a model are loaded, 75-80 ms on the 2-core test machine, all of it with the GIL held. The audio
callbacks need the GIL, so such a pause underruns a 30-45 ms output buffer and starves the worker
(measured: the bench's remaining dropouts came with exactly these stalls, a few per 10 minutes).

`freeze()` moves every object alive now into the collector's permanent generation, which later
collections skip: they then walk only what was made since, which in the engine's steady state is
little. Called by the controller once a model is loaded and once a session is open. Frozen objects
that are later dropped are still freed by reference counting; only reference cycles among them
stay, until `thaw()` (the controller's close) hands everything back to the collector, so that the
interpreter's exit still finalises them (nanobind, under soxr, reports objects it never saw freed).
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """O(1): no collection runs here."""
    gc.freeze()


def thaw() -> None:
    """Back to normal collection (the engine has stopped: pauses no longer matter)."""
    gc.unfreeze()
