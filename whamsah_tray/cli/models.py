"""`whamsah-tray models`: the installed models and the figures their manifests report.

Reads the manifests only (weights are not loaded). Runs on the main thread.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list installed models and their figures",
        description="List the installed separation models (weights/*.json manifests): architecture, "
                    "sample rate, latency, training data, license and measured figures. "
                    "'*' marks the default model.",
    )
    parser.set_defaults(handler=run)


def _flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items += _flatten(value, f"{name}.")
        else:
            items.append((name, value))
    return items


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_models(models) -> list[str]:
    """Lines describing ModelInfo objects (from whamsah_tray.separation.list_models())."""
    lines: list[str] = []
    for info in models:
        mark = "*" if info.is_default else " "
        lines.append(
            f"{mark} {info.name}  ({info.architecture}, {info.sample_rate} Hz, "
            f"latency {info.latency_ms:.1f} ms = {info.latency_samples} samples)"
        )
        if info.description:
            lines.append(f"    {info.description}")
        sha = f" (sha256 {info.sha256[:12]}...)" if info.sha256 else ""
        lines.append(f"    weights:    {info.weights_file or '-'}{sha}")
        lines.append(f"    trained on: {info.training_data or '-'}")
        lines.append(f"    license:    {info.license or '-'}")
        figures = _flatten(dict(info.figures or {}))
        if figures:
            lines.append("    figures:")
            width = max(len(name) for name, _ in figures)
            lines += [f"      {name:<{width}}  {_figure(value)}" for name, value in figures]
        else:
            lines.append("    figures:    (none measured)")
        lines.append("")
    return lines[:-1] if lines else lines


def run(args: argparse.Namespace) -> int:
    from whamsah_tray.separation import list_models

    models = list_models()
    if not models:
        from whamsah_tray.separation.registry import weights_dirs

        places = ", ".join(str(path) for path in weights_dirs())
        print(f"No models installed (looked for manifests *.json in: {places}).")
        return 0
    print("\n".join(format_models(models)))
    return 0
