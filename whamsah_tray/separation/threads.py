"""How many CPU threads separation may use: torch's intra-op pool and numpy's BLAS pool alike.

The numpy inference paths (models/mask_gru_numpy.py) multiply through numpy's BLAS (OpenBLAS in
the numpy wheels), whose thread pool is separate from torch's and defaults to every core. The
live engine and the bench's "one thread" figures must mean one thread for both.
threadpoolctl sets the BLAS pool; where it is missing the BLAS keeps its default, which changes
speed, never results.

torch is set only where it is already imported: a process that runs a numpy-path model never
imports it. The registry imports torch for a torch model and then calls `sync_torch_threads()`,
and the engine's worker calls it again on its own thread before it runs a new pipeline, so a torch
model chosen later still runs on the figure set here.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def _blas_limiter(threads: int):
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl.threadpool_limits(limits=threads, user_api="blas")


_blas_threads: int | None = None  # what set_compute_threads last gave the BLAS
_threads: int | None = None  # what set_compute_threads was last given (None: never called)


def _torch():
    """torch if this process has imported it, else None (never imports it)."""
    return sys.modules.get("torch")


def compute_thread_count() -> int:
    """The thread count separation runs with now: the last set_compute_threads figure, else
    torch's where it is imported, else 0 (the BLAS default)."""
    if _threads is not None:
        return _threads
    torch = _torch()
    return torch.get_num_threads() if torch is not None else 0


def sync_torch_threads() -> None:
    """Give torch (where imported) the figure of the last set_compute_threads, on this thread."""
    torch = _torch()
    if torch is not None and _threads is not None and torch.get_num_threads() != _threads:
        torch.set_num_threads(_threads)


def set_compute_threads(threads: int) -> None:
    """From now on, for the whole process: torch and BLAS use `threads` threads. The BLAS pool is
    changed only when the figure changes: OpenBLAS must not be resized while another thread (a
    previous session's worker that is still finishing) is inside a BLAS call."""
    global _blas_threads, _threads
    _threads = threads
    sync_torch_threads()
    if _blas_threads != threads:
        _blas_threads = threads
        _blas_limiter(threads)


@contextlib.contextmanager
def compute_threads(threads: int) -> Iterator[None]:
    """Within the block, torch (where imported) and BLAS use `threads` threads; restored afterwards."""
    global _blas_threads, _threads
    torch = _torch()
    previous_torch = torch.get_num_threads() if torch is not None else None
    previous = _threads
    _threads = threads
    if torch is not None:
        torch.set_num_threads(threads)
    limiter = _blas_limiter(threads)
    try:
        yield
    finally:
        _threads = previous
        if torch is not None and previous_torch is not None:
            torch.set_num_threads(previous_torch)
        if limiter is not None:
            limiter.restore_original_limits()
            _blas_threads = None  # back to whatever it was before: unknown here
