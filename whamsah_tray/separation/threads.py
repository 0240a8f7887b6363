"""How many CPU threads separation may use: torch's intra-op pool and numpy's BLAS pool alike.

The numpy inference paths (models/mask_gru_numpy.py) multiply through numpy's BLAS (OpenBLAS in
the numpy wheels), whose thread pool is separate from torch's and defaults to every core. The
live engine and the bench's "one thread" figures must mean one thread for both.
threadpoolctl (installed with librosa's scikit-learn) sets the BLAS pool; where it is missing the
BLAS keeps its default, which changes speed, never results.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def _blas_limiter(threads: int):
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl.threadpool_limits(limits=threads, user_api="blas")


_blas_threads: int | None = None  # what set_compute_threads last gave the BLAS


def set_compute_threads(threads: int) -> None:
    """From now on, for the whole process: torch and BLAS use `threads` threads. The BLAS pool is
    changed only when the figure changes: OpenBLAS must not be resized while another thread (a
    previous session's worker that is still finishing) is inside a BLAS call."""
    global _blas_threads
    torch.set_num_threads(threads)
    if _blas_threads != threads:
        _blas_threads = threads
        _blas_limiter(threads)


@contextlib.contextmanager
def compute_threads(threads: int) -> Iterator[None]:
    """Within the block, torch and BLAS use `threads` threads; restored afterwards."""
    global _blas_threads
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    limiter = _blas_limiter(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        if limiter is not None:
            limiter.restore_original_limits()
            _blas_threads = None  # back to whatever it was before: unknown here
