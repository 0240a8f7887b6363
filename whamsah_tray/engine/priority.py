"""Asking the OS to schedule the audio threads ahead of ordinary work, where it allows us.

On Linux the audio callback's thread asks for SCHED_FIFO (real-time) and the inference worker and
the controller thread for a higher priority (nice -10; the callback needs the GIL, so the threads
that hold it must not be preempted for long either): without that, a busy machine (a nice-0 compile, other apps) delays
the callback by tens of milliseconds and the device runs dry. Unprivileged desktop users usually
may not (RLIMIT_RTPRIO 0, no CAP_SYS_NICE): then nothing changes and the engine still works, with
the larger margins the bench figures show. Other systems: no-op (their audio APIs already run
callbacks at high priority).

`promote_callback_thread` runs once, on the first callback (one system call, no logging);
`promote_worker_thread` on the worker and controller threads at their start.
"""

from __future__ import annotations

import os
import threading

CALLBACK_RT_PRIORITY = 20  # low among real-time priorities (PulseAudio uses 5..20, JACK 70+)
WORKER_NICE = -10


def promote_callback_thread() -> bool:
    """SCHED_FIFO for the calling thread. Returns whether it worked."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(CALLBACK_RT_PRIORITY))
    except (AttributeError, OSError):
        return False
    return True


def promote_worker_thread() -> bool:
    """nice -10 for the calling thread (Linux threads have their own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
    except (AttributeError, OSError):
        return False
    return True
