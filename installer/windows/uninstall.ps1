<#
.SYNOPSIS
  Remove WHAMSAH Tray for the current user: the venv, the Start Menu and Startup shortcuts.
  The profile (%LOCALAPPDATA%\whamsah-tray\whamsah-tray\profile.toml, where platformdirs puts it)
  and the log (...\whamsah-tray\whamsah-tray\Logs) are kept unless -Purge is given, which removes
  all of %LOCALAPPDATA%\whamsah-tray.
#>
param([switch]$Purge)
$ErrorActionPreference = "Stop"
$AppHome = Join-Path $env:LOCALAPPDATA "whamsah-tray"
Remove-Item -Force -ErrorAction SilentlyContinue (Join-Path ([Environment]::GetFolderPath("Programs")) "WHAMSAH Tray.lnk")
Remove-Item -Force -ErrorAction SilentlyContinue (Join-Path ([Environment]::GetFolderPath("Startup")) "WHAMSAH Tray.lnk")
Remove-Item -Recurse -Force -ErrorAction SilentlyContinue (Join-Path $AppHome "venv")
if ($Purge) { Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $AppHome }
Write-Host "==> WHAMSAH Tray removed"
