"""The package's layers, read from its imports: separation <- engine <- app/cli, training never
imported at run time.

Every module under whamsah_tray/ is parsed with `ast` and every import in it is checked: at the top,
inside functions (lazy imports) and under `if TYPE_CHECKING:` alike, since each one is a
dependency a reader follows. A module may import its own layer and the layers below it, never one
above; nothing outside training/ imports training/.

Layers, lowest first:
  0 base        whamsah_tray (the version), errors.py
  1 audio files audio_io.py
  2 separation  the separation core (numpy/torch only)
  3 engine      streams, worker, devices, playback; engine/api.py is its typed boundary
  4 library     benchmark.py, evaluation.py, file_separation.py (the CLI's work, no UI)
  5 app         the tray
  6 cli         the command line (which starts the tray), __main__
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "whamsah_tray"
PACKAGE = "whamsah_tray"

LAYERS = {
    "whamsah_tray": 0,
    "whamsah_tray.errors": 0,
    "whamsah_tray.audio_io": 1,
    "whamsah_tray.separation": 2,
    "whamsah_tray.engine": 3,
    "whamsah_tray.benchmark": 4,
    "whamsah_tray.evaluation": 4,
    "whamsah_tray.file_separation": 4,
    "whamsah_tray.app": 5,
    "whamsah_tray.cli": 6,
    "whamsah_tray.__main__": 6,
}
TRAINING = "whamsah_tray.training"

# (importing module, imported module) -> why it must be so. Empty: no exception is needed today;
# one added here must say why.
ALLOWED: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for every import in `source`, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from whamsah_tray import engine` imports the subpackage itself
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names
                      if f"{name}.{alias.name}" in LAYERS or f"{name}.{alias.name}" == TRAINING]
    return found


def layer_of(module: str) -> str | None:
    """The most specific LAYERS (or training) prefix of a package module; None outside the package."""
    if module == TRAINING or module.startswith(TRAINING + "."):
        return TRAINING
    best = None
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """What in `source` (the text of `module`) imports across the layers the wrong way."""
    own = layer_of(module)
    assert own is not None, f"{module} is in no layer: add it to LAYERS"
    found = []
    for line, imported in imported_modules(source, module, is_package):
        if not imported.startswith(PACKAGE):
            continue
        target = layer_of(imported)
        if target is None or (module, imported) in ALLOWED:
            continue
        if target == TRAINING:
            if own != TRAINING:
                found.append(f"{module}:{line} imports {imported} (training code is never imported at run time)")
            continue
        if own == TRAINING:
            continue  # training may use anything below the app
        if LAYERS[target] > LAYERS[own]:
            found.append(f"{module}:{line} imports {imported}, a higher layer ({target} over {own})")
    return found


def package_modules() -> list[tuple[str, Path]]:
    return sorted((module_name(path), path) for path in PACKAGE_DIR.rglob("*.py"))


def test_every_module_imports_only_its_own_layer_and_those_below():
    found = []
    for module, path in package_modules():
        found += violations(module, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py")
    assert not found, "\n".join(found)


def test_training_code_is_imported_by_nothing_but_training():
    found = [v for module, path in package_modules() if layer_of(module) != TRAINING
             for v in violations(module, path.read_text(encoding="utf-8"))
             if "training code" in v]
    assert not found


@pytest.mark.parametrize("module, source", [
    ("whamsah_tray.separation.streaming", "from whamsah_tray.engine.api import MAX_KEY"),
    ("whamsah_tray.engine.controller", "def f():\n    from whamsah_tray.app.status import EngineView"),
    ("whamsah_tray.engine.controller", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                       "    from whamsah_tray.cli.run import summary"),
    ("whamsah_tray.benchmark", "from whamsah_tray.cli.bench import LIVE_BLOCK_SIZES"),
    ("whamsah_tray.app.tray", "from whamsah_tray.cli import main"),
    ("whamsah_tray.cli.run", "from whamsah_tray.training import train"),
    ("whamsah_tray.app.engine_link", "from whamsah_tray import training"),
    ("whamsah_tray.engine.api", "from ..app import status"),
])
def test_the_check_finds_an_import_from_a_higher_layer(module, source):
    assert violations(module, source)


@pytest.mark.parametrize("module, source", [
    ("whamsah_tray.cli.run", "from whamsah_tray.engine.api import EngineState"),
    ("whamsah_tray.app.tray", "from whamsah_tray.engine.api import EngineState"),
    ("whamsah_tray.engine.controller", "from whamsah_tray.separation import StreamingSeparator"),
    ("whamsah_tray.training.train", "from whamsah_tray.evaluation import score_track"),
])
def test_the_check_lets_imports_from_lower_layers_pass(module, source):
    assert not violations(module, source)


def test_the_engine_api_uses_the_standard_library_only():
    """api.py is imported by the tray before its icon shows: no numpy, PortAudio or model code,
    at the top of the file or anywhere else in it (a type-only import aside)."""
    path = PACKAGE_DIR / "engine" / "api.py"
    source = path.read_text(encoding="utf-8")
    type_only = {node.lineno for block in ast.walk(ast.parse(source)) if isinstance(block, ast.If)
                 and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                 for node in ast.walk(block) if isinstance(node, (ast.Import, ast.ImportFrom))}
    for line, imported in imported_modules(source, "whamsah_tray.engine.api", False):
        allowed = imported.split(".")[0] in sys.stdlib_module_names or imported == "whamsah_tray.errors"
        assert allowed or line in type_only, f"api.py:{line} imports {imported}"


def test_importing_the_api_and_the_tray_modules_loads_no_audio_or_numeric_library():
    """In a fresh interpreter: what the tray imports before the icon shows."""
    code = ("import sys\n"
            "import whamsah_tray.engine.api, whamsah_tray.app.status, whamsah_tray.app.actions, "
            "whamsah_tray.app.menu, whamsah_tray.app.engine_link, whamsah_tray.app.control\n"
            "print(sorted(m for m in ('numpy', 'sounddevice', 'soxr', 'torch', 'whamsah_tray.engine.controller') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=PACKAGE_DIR.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
