"""Training and data preparation for the separation models. Never imported by the app."""
