"""The engine's threads at a higher priority, asked for off the audio threads, and logged.

Each audio callback thread and the inference worker first ask for nice -10 themselves (priority.py:
one system call, which a desktop user is usually refused). What they got, and the kernel ids of
those that were refused, are read here on the controller thread, which asks RealtimeKit on their
behalf (realtime.py: a D-Bus call, never from an audio thread) and says in the log what each got.

The sound library's own threads count too: on Linux PortAudio's ALSA `pulse` plugin runs a
PulseAudio main loop per stream that moves our blocks to the server; left at normal priority, a
busy machine delays it and the output underruns even while our callback runs on time. The threads
that appear while a session opens its streams are those; they get the same request.

High priority (a nice level), not real-time: a real-time thread that computes longer than
RLIMIT_RTTIME (200 ms) without blocking gets the whole process killed, and the worker measures
each new model on its own thread (WHAMSAHNet: ~0.4 s a hop); priority.py says why the callback
threads are not real-time either.
"""

from __future__ import annotations

import logging
import os
import sys

from whamsah_tray.engine.realtime import raise_thread_priority

log = logging.getLogger(__name__)


def _tasks() -> set[int]:
    """This process's thread ids (Linux; elsewhere an empty set)."""
    if not sys.platform.startswith("linux"):
        return set()
    try:
        return {int(name) for name in os.listdir("/proc/self/task")}
    except OSError:
        return set()


class ThreadPriorities:
    """Controller thread only."""

    def __init__(self) -> None:
        self._before: set[int] = set()
        self._library: set[int] = set()  # threads the sound library started for this session
        self._done: set[int] = set()  # asked for already (per session: thread ids are reused)

    def before_open(self) -> None:
        self._before = _tasks()
        self._library, self._done = set(), set()

    def after_open(self) -> None:
        self._library = _tasks() - self._before

    def check(self, session) -> None:
        """Each thread of the session (callback sides, worker, the library's) once it has started:
        asked for on its behalf if its own request was refused. Cheap when there is nothing new."""
        callback, worker = session.callback, session.worker
        ours = (("input callback", callback.input_tid, callback.promoted),
                ("output callback", callback.output_tid, callback.output_promoted),
                ("inference worker", worker.tid, worker.promoted))
        for name, tid, promoted in ours:
            if tid is None or tid in self._done:
                continue
            self._done.add(tid)
            got = "nice -10 (own right)" if promoted else raise_thread_priority(tid)
            log.info("%s thread %d: %s", name, tid, got)
        if any(tid is None for _, tid, _ in ours):
            return  # the library's threads once ours are known (so that each is logged by its name)
        library = self._library - self._done
        if library:
            self._done |= library
            alive = _tasks()
            for tid in sorted(library & alive):
                log.info("sound library thread %d: %s", tid, raise_thread_priority(tid))
