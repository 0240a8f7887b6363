<#
.SYNOPSIS
  Install WHAMSAH Tray for the current user on Windows.

.DESCRIPTION
  - a virtual environment in %LOCALAPPDATA%\whamsah-tray\venv with the CPU build of torch and the app;
  - a Start Menu shortcut "WHAMSAH Tray";
  - unless -NoAutostart, a shortcut "WHAMSAH Tray.lnk" in the Startup folder: the same file the tray's
    "Start at login" check creates and removes (whamsah_tray/app/autostart.py makes it the same way,
    through the WScript.Shell COM object);
  - guidance for VB-Cable, the virtual audio cable the tray listens to.
  Written for Windows 10/11 with Python >= 3.11 from python.org; the project's CI runs on Linux and
  cannot run this script.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File installer\windows\install.ps1
#>
param(
    [switch]$NoAutostart,
    [string]$Python = ""
)
$ErrorActionPreference = "Stop"

$RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot "..\..")).Path
$AppHome = Join-Path $env:LOCALAPPDATA "whamsah-tray"
$Venv = Join-Path $AppHome "venv"
$Launcher = Join-Path $Venv "Scripts\whamsah-tray.exe"
# pythonw-based launcher: the tray must not open a console window at login.
$GuiLauncher = Join-Path $Venv "Scripts\pythonw.exe"
# The shortcuts' icon is copied into the venv (removed with it), not read from this checkout.
$Icon = Join-Path $Venv "share\whamsah-tray\whamsah-tray.ico"
$Programs = [Environment]::GetFolderPath("Programs")
$Startup = [Environment]::GetFolderPath("Startup")

function Say($text) { Write-Host "==> $text" }

if (-not $Python) {
    $py = Get-Command py -ErrorAction SilentlyContinue
    if ($py) { $Python = "py"; $PythonArgs = @("-3") } else { $Python = "python"; $PythonArgs = @() }
} else { $PythonArgs = @() }
& $Python @PythonArgs -c "import sys; raise SystemExit(sys.version_info < (3, 11))"
if ($LASTEXITCODE -ne 0) { throw "Python >= 3.11 is needed: https://www.python.org/downloads/windows/" }
# The Microsoft Store's Python runs in a package sandbox that redirects writes under %LOCALAPPDATA%
# (cpython#85368): the venv below would land somewhere else than the shortcuts point to.
& $Python @PythonArgs -c "import sys; raise SystemExit(int('WindowsApps' in sys.executable or 'PythonSoftwareFoundation' in sys.base_prefix))"
if ($LASTEXITCODE -ne 0) {
    throw "this is the Microsoft Store's Python, whose sandbox redirects the install folder; install Python from https://www.python.org/downloads/windows/ and run this again (or pass -Python C:\path\to\python.exe)"
}

Say "virtual environment: $Venv"
New-Item -ItemType Directory -Force -Path $AppHome | Out-Null
if (-not (Test-Path (Join-Path $Venv "Scripts\python.exe"))) {
    & $Python @PythonArgs -m venv $Venv
    if ($LASTEXITCODE -ne 0) { throw "could not create $Venv" }
}
$VenvPython = Join-Path $Venv "Scripts\python.exe"
# The Windows torch wheel on PyPI is the CPU build.
& $VenvPython -m pip install --quiet "torch==2.13.0"
if ($LASTEXITCODE -ne 0) { throw "pip could not install torch" }
& $VenvPython -m pip install --quiet $RepoRoot
if ($LASTEXITCODE -ne 0) { throw "pip could not install the app from $RepoRoot" }

# The models: an installed app looks in <venv>\share\whamsah-tray\weights (the registry's
# weights_dirs). The top-level files only: weights\in-training holds parts of unfinished runs.
$Weights = Join-Path $Venv "share\whamsah-tray\weights"
Say "models: $Weights"
New-Item -ItemType Directory -Force -Path $Weights | Out-Null
Get-ChildItem -Path (Join-Path $RepoRoot "weights") -File | Copy-Item -Destination $Weights -Force
Copy-Item -Path (Join-Path $RepoRoot "assets\whamsah-tray.ico") -Destination $Icon -Force

function New-Shortcut($Path, $Target, $Arguments) {
    $shell = New-Object -ComObject WScript.Shell
    $s = $shell.CreateShortcut($Path)
    $s.TargetPath = $Target
    $s.Arguments = $Arguments
    $s.WorkingDirectory = Split-Path $Target
    $s.IconLocation = $Icon
    $s.WindowStyle = 7
    $s.Save()
}

Say "Start Menu shortcut"
New-Shortcut (Join-Path $Programs "WHAMSAH Tray.lnk") $GuiLauncher "-m whamsah_tray"

if (-not $NoAutostart) {
    Say "start at login: $Startup\WHAMSAH Tray.lnk"
    New-Shortcut (Join-Path $Startup "WHAMSAH Tray.lnk") $GuiLauncher "-m whamsah_tray"
}

# VB-Cable: the tray records "CABLE Output (VB-Audio Virtual Cable)" and plays to your speakers.
$cable = Get-CimInstance Win32_SoundDevice -ErrorAction SilentlyContinue | Where-Object { $_.Name -like "*VB-Audio*" }
if (-not $cable) {
    Write-Host @"

No virtual audio cable found. WHAMSAH Tray needs VB-Cable (free):
  1. Download it from https://vb-audio.com/Cable/ and unzip it.
  2. Right-click VBCABLE_Setup_x64.exe -> Run as administrator -> Install Driver, then reboot.
  3. Send the app you want to karaoke to "CABLE Input": Settings -> System -> Sound ->
     Volume mixer -> that app's Output device (or make CABLE Input the default output).
  4. In the tray: Input > CABLE Output (VB-Audio Virtual Cable), Output > your speakers.
"@
}
Say "done. Start it from the Start Menu (WHAMSAH Tray) or: $Launcher"
