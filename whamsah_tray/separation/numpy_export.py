"""Write an installed model's torch-free weights: `<name>.npz` beside its manifest, and the
manifest's `numpy_weights` / `numpy_sha256` fields, so that the registry loads it without torch.

    python -m whamsah_tray.separation.numpy_export whamsah-rt [--weights-dir DIR]

The arrays are the torch network's own tensors (parameters and buffers) as float32/int64 numpy
arrays under the same names, so the numbers are the trained ones, bit for bit; the export then
loads both back and checks that the two paths give the same output on noise. Needs torch (it reads
the .pt); run after training/export.py, on the main thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from whamsah_tray.errors import ModelLoadingError
from whamsah_tray.separation.models import NUMPY_PATHS
from whamsah_tray.separation.registry import find_model, load_from_info, sha256_of


def export_numpy_weights(name: str | None = None, weights_dir: Path | None = None) -> Path:
    """The .npz of the named (or default) model, written and recorded in its manifest; checked
    against the torch path. Raises ModelLoadingError (no numpy path, a mismatch)."""
    from whamsah_tray.separation.models.mask_gru_numpy import (
        module_arrays,
        save_weights,
    )
    from whamsah_tray.separation.streaming import StreamingSeparator

    info = find_model(name, weights_dir)
    if info.architecture not in NUMPY_PATHS:
        raise ModelLoadingError(f"model '{info.name}': architecture '{info.architecture}' has no numpy path")
    assert info.manifest_path is not None
    torch_model = load_from_info(info, torch_module=True)
    path = info.manifest_path.with_suffix(".npz")
    save_weights(module_arrays(torch_model.network), path)
    manifest = json.loads(info.manifest_path.read_text(encoding="utf-8"))
    manifest["numpy_weights"], manifest["numpy_sha256"] = path.name, sha256_of(path)
    info.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    numpy_model = find_model(info.name, info.manifest_path.parent)
    numpy_model = load_from_info(numpy_model)
    audio = (0.1 * np.random.default_rng(0).standard_normal((5 * 8192, 2))).astype(np.float32)
    expected = StreamingSeparator(torch_model).process(audio)[0]  # the torch module's numpy path
    got = StreamingSeparator(numpy_model).process(audio)[0]
    if not np.array_equal(expected, got):
        raise ModelLoadingError(f"model '{info.name}': the exported weights give other output "
                                f"(max difference {np.abs(expected - got).max():.3g})")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whamsah_tray.separation.numpy_export",
                                     description="Write an installed model's torch-free .npz weights.")
    parser.add_argument("name", nargs="?", help="the model (default: the default model)")
    parser.add_argument("--weights-dir", type=Path, help="where its manifest is (default: the registry's search)")
    args = parser.parse_args(argv)
    try:
        path = export_numpy_weights(args.name, args.weights_dir)
    except ModelLoadingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
