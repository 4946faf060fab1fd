"""The ``--models-dir`` option and the models folder it resolves to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from theo.registry import ModelRegistry
from theo.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def models_dir_option(function: F) -> F:
    return click.option(
        "--models-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Models folder (default: $THEO_MODELS_DIR or ./models).",
    )(function)


def resolve_models_dir(models_dir: Path | None) -> Path:
    """``--models-dir``, else ``$THEO_MODELS_DIR``, else ``./models``."""
    return models_dir if models_dir is not None else Settings().models_dir


def open_registry(models_dir: Path | None) -> ModelRegistry:
    return ModelRegistry(resolve_models_dir(models_dir))
