"""Asking the OS to schedule the engine's threads ahead of ordinary work, where it allows us.

On Linux the audio callback's thread, the inference worker and the controller thread ask for
nice -10 (each Linux thread has its own nice value). The callback needs the GIL, so the threads
that hold it must not be preempted for long either. Unprivileged desktop users usually may not
(no CAP_SYS_NICE): then nothing changes and the engine still works, with the margins the bench
figures show; the controller can then ask RealtimeKit for them (realtime.raise_thread_priority,
D-Bus: never from the callback). Windows: the inference worker registers with MMCSS as a
"Pro Audio" task (realtime.enter_pro_audio); PortAudio does the same for its WASAPI callback
threads. macOS: no-op (CoreAudio already runs PortAudio's callbacks at real-time priority).

The callback threads are never made real-time (SCHED_FIFO/RR): measured here, a real-time
PortAudio thread on the ALSA `pulse` plugin starves the plugin's own (normal-priority) mainloop
threads, then polls in vain and spins a whole core at real-time priority. A raised nice value
cannot starve anything.

`promote_current_thread` runs once on the first callback (one system call, no logging), and on
the worker and controller threads at their start; `demote_current_thread` on the worker as it ends.
"""

from __future__ import annotations

import os
import sys
import threading

from whamsah_tray.engine.realtime import ENGINE_NICE, enter_pro_audio, in_pro_audio, leave_pro_audio


def promote_current_thread(worker: bool = False) -> bool:
    """nice -10 for the calling thread; on Windows, MMCSS "Pro Audio" for the inference worker
    (`worker`). Returns whether it worked."""
    if sys.platform == "win32":  # no nice values (and no os.setpriority)
        if worker:  # MMCSS registration talks to a Windows service: not for the callback thread
            enter_pro_audio()
            return in_pro_audio()
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENGINE_NICE)
    except (AttributeError, OSError):
        return False
    return True


def demote_current_thread() -> None:
    """Ends what promote_current_thread(worker=True) registered for the calling thread (Windows:
    its MMCSS task; elsewhere nothing, a nice level ends with its thread)."""
    if sys.platform == "win32":
        leave_pro_audio()
