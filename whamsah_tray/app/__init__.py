"""The tray app: icon, menu, global hotkeys, TOML profile, file dialog and start-at-login.

It only sends commands to the engine's controller and draws the engine's state; pystray and pynput
are imported lazily because they fail at import time without a display.
"""
