"""The routing journal: what a run changed in the sound server's routing, on disk until undone;
only a dead process's journal is handed back for undoing."""

from __future__ import annotations

import json
import subprocess
import sys

from whamsah_tray.engine.routing_journal import RoutingJournal, RoutingState


def test_nothing_to_undo_means_no_file(tmp_path):
    journal = RoutingJournal(tmp_path / "routing.json")
    journal.write(RoutingState(True, "speakers", {7: "speakers"}))
    assert journal.path.exists()
    journal.write(RoutingState())
    assert not journal.path.exists()


def test_a_live_process_s_journal_is_left_alone_a_dead_one_s_is_handed_back(tmp_path):
    journal = RoutingJournal(tmp_path / "routing.json")
    journal.write(RoutingState(False, "speakers", {3: "headphones"}))
    assert journal.left_behind() is None  # our own
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    data = json.loads(journal.path.read_text())
    started = int(open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[19])
    journal.path.write_text(json.dumps({**data, "pid": child.pid, "started": started}))
    assert journal.left_behind() is None  # a running tray's
    journal.path.write_text(json.dumps({**data, "pid": child.pid, "started": started - 1}))
    assert journal.left_behind() is not None  # the number was reused by a later process
    child.kill()
    child.wait()
    journal.path.write_text(json.dumps({**data, "pid": child.pid, "started": started}))
    left = journal.left_behind()
    assert left == RoutingState(False, "speakers", {3: "headphones"})


def test_an_unreadable_journal_is_dropped(tmp_path):
    journal = RoutingJournal(tmp_path / "routing.json")
    journal.path.write_text("{not json")
    assert journal.left_behind() is None
    assert not journal.path.exists()
