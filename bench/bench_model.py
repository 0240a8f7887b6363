"""Benchmark a separation model: latency, real-time factor, peak RSS, size.

    python bench/bench_model.py [--model NAME | --untrained ARCH] [--json FILE] [--seconds S]

A thin wrapper around `whamsah-tray bench` (whamsah_tray/benchmark.py holds the code), so that the
figures printed here and by the CLI are the same measurement. Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from whamsah_tray.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
