"""Static checks for the platforms the tests cannot run on: pyright type-checks the package as
Windows and as macOS see it, and every diagnostic that Linux does not also get is a failure: a
name that does not exist there (os.getuid, socket.AF_UNIX, resource, winreg...) used on a path
that is not guarded by `sys.platform`, which pyright understands. Diagnostics all platforms share
(the torch and numpy typing) are counted, not judged: they are not what breaks a Windows or macOS
user's start.

    python tests/platform_types.py        # exit 1 if Windows or Darwin has a diagnostic of its own

Needs pyright (pip install pyright; it fetches its Node package from the npm registry once).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "whamsah_tray"
# Modules that only Linux imports (behind sys.platform checks where they are used): the XDG portal
# client speaks D-Bus through PyGObject's Gio, whose generated bindings pyright resolves only
# where it finds the Linux typelibs.
LINUX_ONLY = {"whamsah_tray/app/portal_shortcuts.py"}


def diagnostics(platform: str) -> set[tuple[str, int, str]]:
    done = subprocess.run([sys.executable, "-m", "pyright", "--outputjson", "--pythonplatform", platform,
                           "--pythonversion", "3.11", str(PACKAGE)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"pyright did not run ({platform}): {done.stderr.strip() or done.stdout[:500]}")
    return {(str(Path(d["file"]).relative_to(REPO_ROOT)), d["range"]["start"]["line"] + 1, d["message"])
            for d in report["generalDiagnostics"] if d["severity"] == "error"}


def main() -> int:
    linux = diagnostics("Linux")
    failed = False
    for platform in ("Windows", "Darwin"):
        own = sorted(d for d in diagnostics(platform) - linux if d[0] not in LINUX_ONLY)
        print(f"platform types: {platform}: {len(own)} error(s) of its own "
              f"({len(linux)} shared with Linux, not judged here)")
        for file, line, message in own:
            print(f"  {file}:{line}: {message.splitlines()[0]}")
        failed = failed or bool(own)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
