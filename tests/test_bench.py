"""`whamsah-tray bench`: the figures it prints and writes are present and sane.

Timings are not asserted (benchmarks print figures; the CPU here is shared): only that they are
positive finite numbers for every thread count and block size asked for, that the latency, size
and parameter count agree with the network itself, and that memory is measured in a separate
process (the model's process peaks above one that only imports the separation core).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from whamsah_tray.benchmark import parameter_count, state_dict_bytes
from whamsah_tray.cli import main
from whamsah_tray.separation import create_untrained_model

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--seconds", "0.5", "--repeats", "1", "--blocks", "512,4096", "--live-seconds", "0.5"]


def _bench(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["bench", *args])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def untrained_report(tmp_path_factory) -> tuple[dict, str]:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    status, printed, _ = _bench("--untrained", "whamsah-rt", "--json", str(path), *QUICK)
    assert status == 0
    return json.loads(path.read_text()), printed


def test_untrained_figures_are_sane(untrained_report):
    data, _ = untrained_report
    network = create_untrained_model("whamsah-rt").network
    assert data["untrained"] is True and data["latency_samples_manifest"] is None
    assert data["latency_samples_network"] == network.delay + network.hop
    assert data["latency_ms"] == pytest.approx(1000 * (network.delay + network.hop) / 44100, abs=0.01)
    assert data["parameters"] == parameter_count(network) > 100_000
    assert data["weights_mb"] == pytest.approx(state_dict_bytes(network) / 1e6, rel=0.01)
    assert data["weights_mb"] > 4 * data["parameters"] / 1e6  # float32 weights at least
    threads = sorted({"1", str(os.cpu_count())}, key=int)
    assert sorted(data["rtf"], key=int) == threads
    for by_block in data["rtf"].values():
        assert sorted(by_block, key=int) == ["512", "4096"]
        assert all(math.isfinite(rtf) and 0 < rtf < 1000 for rtf in by_block.values())
    assert data["rtf_one_thread"] == max(data["rtf"]["1"].values())
    for threads, by_block in data["max_call_ms"].items():
        for block, longest in by_block.items():
            # the longest call is at least the mean call, and no longer than a whole repeat
            calls = max(1, round(data["seconds_of_audio"] * 44100 / int(block)))
            mean_call_ms = data["rtf"][threads][block] * 1000 * int(block) / 44100
            assert mean_call_ms - 1e-6 <= longest <= mean_call_ms * calls + 1e-6
    # live pace: CPU per hop and CPU share are one figure in two units
    assert data["live_seconds"] == 0.5 and 0 < data["live_cpu_percent"] < 1000
    hop_s = network.hop / 44100
    assert data["live_ms_per_hop"] == pytest.approx(data["live_cpu_percent"] / 100 * hop_s * 1000, rel=0.02)
    assert data["baseline_rss_mb"] > 20
    assert data["peak_rss_mb"] > data["baseline_rss_mb"]  # measured in its own process, with the model


def test_untrained_printout_is_labelled(untrained_report):
    data, printed = untrained_report
    assert "UNTRAINED" in printed
    assert f"{data['latency_samples_network']} samples" in printed
    assert f"{data['parameters']:,} parameters" in printed
    assert "peak RSS" in printed and "real-time factor" in printed
    assert f"{data['live_cpu_percent']:.1f} % of one core" in printed


def test_installed_model_reports_its_weights_file(tmp_path, monkeypatch):
    model = create_untrained_model("identity", {"mask_value": 0.5})
    weights = tmp_path / "half.pt"
    torch.save(model.network.state_dict(), weights)
    (tmp_path / "half.json").write_text(json.dumps({
        "name": "half", "architecture": "identity", "config": model.info.config, "sample_rate": 44100,
        "latency_samples": model.info.latency_samples, "weights": weights.name,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }))
    monkeypatch.setenv("WHAMSAH_TRAY_WEIGHTS", str(tmp_path))
    out = tmp_path / "bench.json"
    status, printed, _ = _bench("--model", "half", "--json", str(out), *QUICK)
    assert status == 0
    data = json.loads(out.read_text())
    assert data["untrained"] is False and "UNTRAINED" not in printed
    assert data["latency_samples_manifest"] == data["latency_samples_network"] == model.info.latency_samples
    assert data["weights_mb"] == pytest.approx(weights.stat().st_size / 1e6)
    assert Path(data["weights_file"]).name == "half.pt"


def test_missing_model_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("WHAMSAH_TRAY_WEIGHTS", str(tmp_path))
    status, _, err = _bench("--model", "no-such-model", *QUICK)
    assert status == 2
    assert "no-such-model" in err and len(err.strip().splitlines()) == 1


def test_bench_script_wraps_the_cli():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "bench_model.py"), "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "whamsah-tray bench" in done.stdout
