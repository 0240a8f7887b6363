"""The live process is lean: with the default model (whamsah-rt, numpy weights) the separation
API, `whamsah-tray separate` and the modules the tray, `run` and `play` start from never import
torch, librosa or scikit-learn, and give the same numbers as the numpy path built from the torch
network.

Each check runs in a fresh interpreter (a subprocess), since this test process has torch loaded.
The shipped .npz is also checked against the shipped .pt: the same tensors, bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from whamsah_tray.audio_io import read_audio, write_audio
from whamsah_tray.errors import ModelLoadingError
from whamsah_tray.separation import (
    StreamingSeparator,
    find_model,
    load_model,
    separate_array,
)
from whamsah_tray.separation.registry import REPO_WEIGHTS_DIR, sha256_of

HEAVY = ("torch", "librosa", "sklearn")
RATE = 44100


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """`python -c code args` in a fresh interpreter; its last stdout line is JSON."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


REPORT = f"import json, sys; print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules], **result}}))"


def song(frames: int = 3 * RATE) -> np.ndarray:
    t = np.arange(frames) / RATE
    voice = sum(np.sin(2 * np.pi * k * (330 * t + 3 * np.sin(2 * np.pi * 5 * t))) / k for k in (1, 2, 3))
    band = 0.15 * np.sin(2 * np.pi * 110 * t) + 0.01 * np.random.default_rng(0).standard_normal(frames)
    return np.stack([0.2 * voice + band, 0.15 * voice + band], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def torch_built():
    """The shipped model's numpy path as built from its torch network (the reference)."""
    model = load_model("whamsah-rt", torch_module=True)
    assert type(model.network).__name__ == "MaskGRU"
    return model


def test_the_default_model_loads_from_numpy_weights():
    info = find_model()
    assert info.name == "whamsah-rt" and info.numpy_weights_file == "whamsah-rt.npz"
    assert sha256_of(REPO_WEIGHTS_DIR / info.numpy_weights_file) == info.numpy_sha256
    assert type(load_model().network).__name__ == "NumpyMaskGRU"


def test_the_numpy_weights_are_the_trained_tensors_bit_for_bit(torch_built):
    arrays = np.load(REPO_WEIGHTS_DIR / "whamsah-rt.npz", allow_pickle=False)
    state = torch_built.network.state_dict()
    assert set(state) <= set(arrays.files)
    for name, tensor in state.items():
        np.testing.assert_array_equal(arrays[name], tensor.numpy(), err_msg=name)


@pytest.mark.parametrize("key", [0, -2])
def test_separate_array_imports_no_torch_and_gives_the_torch_built_numbers(tmp_path, torch_built, key):
    audio = song()
    np.save(tmp_path / "in.npy", audio)
    code = f"""
import numpy as np, sys
from whamsah_tray.separation import load_model, separate_array
vocals, instrumental = separate_array(np.load(sys.argv[1]), {RATE}, load_model(), key={key})
np.save(sys.argv[2], vocals)
result = {{"network": type(load_model().network).__name__}}
""" + REPORT
    report = run_python(code, str(tmp_path / "in.npy"), str(tmp_path / "out.npy"))
    assert report == {"heavy": [], "network": "NumpyMaskGRU"}
    expected, _ = separate_array(audio, RATE, torch_built, key=key)
    got = np.load(tmp_path / "out.npy")
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_the_separate_command_imports_no_torch(tmp_path, torch_built):
    audio = song()
    write_audio(tmp_path / "song.wav", audio, RATE)
    code = """
import sys
from whamsah_tray.cli import main
result = {"status": main(["separate", sys.argv[1], "--out", sys.argv[2]])}
""" + REPORT
    report = run_python(code, str(tmp_path / "song.wav"), str(tmp_path / "stems"))
    assert report == {"heavy": [], "status": 0}
    written, _ = read_audio(tmp_path / "stems" / "vocals.wav")
    source, _ = read_audio(tmp_path / "song.wav")
    expected, _ = separate_array(source, RATE, torch_built)
    np.testing.assert_allclose(written, expected, atol=1e-4, rtol=0)  # 16/24-bit or float files round


def test_the_engine_and_the_commands_that_start_it_import_no_torch():
    """What the tray, `run` and `play` import before they open a device, and the model the
    engine loads with a pipeline running a hop of audio through it."""
    code = """
import numpy as np
import whamsah_tray.cli, whamsah_tray.cli.run, whamsah_tray.cli.play, whamsah_tray.cli.tray
import whamsah_tray.engine
from whamsah_tray.cli import build_parser
from whamsah_tray.engine.model_slot import load_model as _load_model
from whamsah_tray.engine.levels import LevelRamp
from whamsah_tray.engine.pipeline import SeparationPipeline
from whamsah_tray.separation import StreamingSeparator
from whamsah_tray.separation.threads import set_compute_threads
build_parser()
set_compute_threads(1)
pipeline = SeparationPipeline(StreamingSeparator(_load_model(None), 2), 48000, 2, LevelRamp(48000))
pipeline.measure_compute()
out = pipeline.process(np.full((4096, 2), 0.1, np.float32))
result = {"frames": len(out)}
""" + REPORT
    report = run_python(code)
    assert report["heavy"] == [] and report["frames"] > 0


def test_a_torch_model_still_loads_when_chosen():
    code = """
from whamsah_tray.separation import load_model
before = [m for m in ("torch",) if __import__("sys").modules.get(m)]
network = load_model("whamsahnet").network
result = {"before": before, "network": type(network).__name__}
""" + REPORT
    report = run_python(code)
    assert report == {"heavy": ["torch"], "before": [], "network": "WHAMSAHNet"}


def install_numpy_copy(tmp_path: Path, **changes) -> Path:
    for name in ("whamsah-rt.json", "whamsah-rt.npz"):
        shutil.copy(REPO_WEIGHTS_DIR / name, tmp_path / name)
    manifest = json.loads((tmp_path / "whamsah-rt.json").read_text())
    manifest.update(changes)
    (tmp_path / "whamsah-rt.json").write_text(json.dumps(manifest))
    return tmp_path


def test_numpy_weights_are_checked_against_the_manifest_hash(tmp_path):
    install_numpy_copy(tmp_path)
    with open(tmp_path / "whamsah-rt.npz", "r+b") as file:
        file.seek(5000)
        file.write(b"\x00garbage")
    with pytest.raises(ModelLoadingError, match="sha256"):
        load_model(weights_dir=tmp_path)


def test_numpy_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    manifest = json.loads((REPO_WEIGHTS_DIR / "whamsah-rt.json").read_text())
    install_numpy_copy(tmp_path, config={**manifest["config"], "phase_bins": 64})
    with pytest.raises(ModelLoadingError, match="do not fit"):
        load_model(weights_dir=tmp_path)


def test_numpy_weights_that_are_not_an_npz_are_refused(tmp_path):
    install_numpy_copy(tmp_path)
    (tmp_path / "whamsah-rt.npz").write_bytes(b"not a zip archive")
    manifest = json.loads((tmp_path / "whamsah-rt.json").read_text())
    manifest["numpy_sha256"] = sha256_of(tmp_path / "whamsah-rt.npz")
    (tmp_path / "whamsah-rt.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadingError, match="unreadable weights"):
        load_model(weights_dir=tmp_path)


def test_the_export_writes_what_the_registry_loads(tmp_path):
    """numpy_export on a copy of the shipped model: a manifest with no numpy weights gains them,
    and the model then loads without torch, giving the torch-built path's numbers."""
    from whamsah_tray.separation.numpy_export import export_numpy_weights

    shutil.copy(REPO_WEIGHTS_DIR / "whamsah-rt.pt", tmp_path / "whamsah-rt.pt")
    manifest = json.loads((REPO_WEIGHTS_DIR / "whamsah-rt.json").read_text())
    for key in ("numpy_weights", "numpy_sha256"):
        manifest.pop(key)
    (tmp_path / "whamsah-rt.json").write_text(json.dumps(manifest))
    assert type(load_model(weights_dir=tmp_path).network).__name__ == "MaskGRU"
    assert export_numpy_weights("whamsah-rt", tmp_path) == tmp_path / "whamsah-rt.npz"
    loaded = load_model(weights_dir=tmp_path)
    assert type(loaded.network).__name__ == "NumpyMaskGRU"
    audio = song(RATE)
    np.testing.assert_array_equal(StreamingSeparator(loaded).process(audio)[0],
                                  StreamingSeparator(load_model(torch_module=True)).process(audio)[0])
