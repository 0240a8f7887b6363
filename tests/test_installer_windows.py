"""install.ps1 cannot run here (no PowerShell, no Windows); what can be checked is the Python
each check hands to the user's interpreter: run here with the interpreter's paths stubbed as
Windows shows them (a mock of the Store's and python.org's sys.executable)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "installer" / "windows" / "install.ps1"


def _store_check() -> str:
    found = re.search(r'-c "(import sys; raise SystemExit\(int\(\'WindowsApps\'.*?\)\))"', SCRIPT.read_text())
    assert found, "install.ps1 no longer checks for the Store's Python"
    return found.group(1)


@pytest.mark.parametrize("executable, base_prefix, refused", [
    (r"C:\Users\ana\AppData\Local\Microsoft\WindowsApps\python3.12.exe",
     r"C:\Program Files\WindowsApps\PythonSoftwareFoundation.Python.3.12_3.12.2032.0_x64__qbz5n2kfra8p0", True),
    (r"C:\Users\ana\AppData\Local\Programs\Python\Python312\python.exe",
     r"C:\Users\ana\AppData\Local\Programs\Python\Python312", False),
])
def test_the_store_python_is_refused_and_python_org_is_not(executable, base_prefix, refused):
    stub = f"import sys; sys.executable = {executable!r}; sys.base_prefix = {base_prefix!r}\n"
    done = subprocess.run([sys.executable, "-c", stub + _store_check()], capture_output=True, text=True)
    assert done.returncode == (1 if refused else 0), done.stderr
