"""bench/server_floor.py's readings: the latency the server reports per stream, underruns in the load's window."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from server_floor import count_within, sink_input_latencies

# `pactl list sink-inputs` as PulseAudio 16 prints it (cut), two streams and one without latencies
PACTL = """Sink Input #5
\tDriver: protocol-native.c
\tSink: 1
\tBuffer Latency: 33791 usec
\tSink Latency: 2312 usec
\tProperties:
\t\tapplication.name = "whamsah-floor-pacat"
\t\tapplication.process.binary = "pacat"
Sink Input #6
\tDriver: protocol-native.c
\tBuffer Latency: 53151 usec
\tSink Latency: 2287 usec
\tProperties:
\t\tapplication.name = "ALSA plug-in [python3.11]"
Sink Input #7
\tDriver: protocol-native.c
\tProperties:
\t\tapplication.name = "corked"
"""


def test_each_streams_buffer_and_sink_latency_by_its_application_name():
    assert sink_input_latencies(PACTL) == {"whamsah-floor-pacat": (33.791, 2.312),
                                           "ALSA plug-in [python3.11]": (53.151, 2.287)}
    assert sink_input_latencies("") == {}


def test_only_underruns_while_the_load_ran_count():
    assert count_within([0.5, 1.0, 1.5, 2.0, 2.5], start=1.0, end=2.0) == 3
    assert count_within([], start=0.0, end=1.0) == 0
