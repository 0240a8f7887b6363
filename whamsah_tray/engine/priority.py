"""Asking the OS to schedule the engine's threads ahead of ordinary work, where it allows us.

On Linux the audio callback's thread, the inference worker and the controller thread ask for
nice -10 (each Linux thread has its own nice value). The callback needs the GIL, so the threads
that hold it must not be preempted for long either. Unprivileged desktop users usually may not
(no CAP_SYS_NICE): then nothing changes and the engine still works, with the margins the bench
figures show. Other systems: no-op (their audio APIs already run callbacks at high priority).

Not SCHED_FIFO: measured here, a real-time PortAudio thread on the ALSA `pulse` plugin starves
the plugin's own (normal-priority) mainloop threads, then polls in vain and spins a whole core at
real-time priority. A raised nice value cannot starve anything.

`promote_current_thread` runs once on the first callback (one system call, no logging), and on
the worker and controller threads at their start.
"""

from __future__ import annotations

import os
import sys
import threading

ENGINE_NICE = -10


def promote_current_thread() -> bool:
    """nice -10 for the calling thread. Returns whether it worked."""
    if sys.platform == "win32":  # no nice values (and no os.setpriority)
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENGINE_NICE)
    except (AttributeError, OSError):
        return False
    return True
