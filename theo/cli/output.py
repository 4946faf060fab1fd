"""What the commands print besides their results: errors, sizes and tables."""

from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(message: str) -> NoReturn:
    """Print ``Error: message`` on stderr and exit 1."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def human_size(size: int) -> str:
    """``78093394`` → ``"78.1 MB"`` (decimal units, like download sizes)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def print_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Left-aligned columns two spaces apart, no trailing blanks."""
    table = [headers, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())
