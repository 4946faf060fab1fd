"""The ``theo`` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from theo import __version__
from theo.manifest import validate_model_name
from theo.pull import PullError, pull_model
from theo.settings import get_settings


models_dir_option = click.option(
    "--models-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Models folder (default: $THEO_MODELS_DIR or ./models).",
)


@click.group()
@click.version_option(__version__, prog_name="theo")
def main() -> None:
    """Theo: an OpenAI-compatible speech-to-text server for Whisper models."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")


@main.command()
@click.argument("names", nargs=-1, required=True)
@models_dir_option
@click.option("--force", is_flag=True, help="Reinstall even if the model is installed.")
def pull(names: tuple[str, ...], models_dir: Path | None, force: bool) -> None:
    """Install models from the catalog into the models folder."""
    target = models_dir or get_settings().models_dir
    for name in names:
        try:
            validate_model_name(name)
            path = pull_model(name, target, force=force)
        except (PullError, ValueError) as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        click.echo(f"{name} installed at {path}")
