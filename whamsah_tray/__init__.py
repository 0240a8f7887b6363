"""WHAMSAH Tray: live karaoke for any application's audio, from the system tray."""

__version__ = "0.1.0"
