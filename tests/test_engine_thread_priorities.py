"""The engine's threads get a higher priority, asked for on the controller thread and logged:
the callback sides and the worker ask for nice -10 themselves; those refused are asked for on their
behalf (RealtimeKit, realtime.py), and so are the sound library's threads that appeared while the
session opened its streams."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from whamsah_tray.engine import thread_priorities
from whamsah_tray.engine.thread_priorities import ThreadPriorities


def _session(input_tid=None, output_tid=None, worker_tid=None, promoted=False):
    return SimpleNamespace(
        callback=SimpleNamespace(input_tid=input_tid, output_tid=output_tid, promoted=promoted,
                                 output_promoted=promoted),
        worker=SimpleNamespace(tid=worker_tid, promoted=promoted))


def test_refused_threads_are_asked_for_once_each_and_the_library_once_ours_are_known(monkeypatch):
    asked: list[int] = []
    monkeypatch.setattr(thread_priorities, "raise_thread_priority", lambda tid: asked.append(tid) or "nice -10 via RealtimeKit")
    stop = threading.Event()
    library = threading.Thread(target=stop.wait)  # stands in for a thread the sound library starts
    priorities = ThreadPriorities()
    priorities.before_open()
    library.start()
    try:
        while library.native_id is None:
            time.sleep(0.01)
        priorities.after_open()
        priorities.check(_session(worker_tid=101))  # the callbacks have not run yet
        assert asked == [101]
        priorities.check(_session(input_tid=102, output_tid=103, worker_tid=101))
        assert asked == [101, 102, 103, library.native_id]
        priorities.check(_session(input_tid=102, output_tid=103, worker_tid=101))
        assert asked == [101, 102, 103, library.native_id]  # nothing twice
        priorities.check(_session(input_tid=102, output_tid=104, worker_tid=101))  # output restarted after idle
        assert asked[-1] == 104
    finally:
        stop.set()
        library.join()


def test_threads_that_got_it_themselves_are_only_logged(monkeypatch, caplog):
    monkeypatch.setattr(thread_priorities, "raise_thread_priority", lambda tid: pytest.fail("asked for"))
    monkeypatch.setattr(thread_priorities, "_tasks", lambda: set())
    priorities = ThreadPriorities()
    priorities.before_open()
    priorities.after_open()
    with caplog.at_level(logging.INFO, logger=thread_priorities.__name__):
        priorities.check(_session(1, 2, 3, promoted=True))
    assert [r.getMessage() for r in caplog.records] == [
        "input callback thread 1: nice -10 (own right)", "output callback thread 2: nice -10 (own right)",
        "inference worker thread 3: nice -10 (own right)"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread ids from /proc: Linux")
def test_a_running_engine_logs_what_each_of_its_threads_got(desktop, portaudio, untrained_model, caplog):
    from test_engine_sync import start_engine

    with caplog.at_level(logging.INFO, logger=thread_priorities.__name__):
        engine, _ = start_engine(lambda name: untrained_model)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any("sound library" in r.getMessage() for r in caplog.records):
                time.sleep(0.1)
        finally:
            engine.close()
    lines = [r.getMessage() for r in caplog.records]
    for name in ("input callback", "output callback", "inference worker", "sound library"):
        assert any(line.startswith(name) for line in lines), lines
    if os.geteuid() == 0:  # root may raise its own threads: each got nice -10
        assert all("nice -10" in line for line in lines), lines
