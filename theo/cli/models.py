"""``theo list``, ``theo inspect`` and ``theo rm``: the installed models (and the catalog)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from theo.catalog import load_catalog
from theo.cli.models_dir import models_dir_option, open_registry
from theo.cli.output import fail, human_size, print_table
from theo.manifest import ModelManifest
from theo.model_folder import folder_size
from theo.pull import remove_model
from theo.registry import ModelRegistry


@click.command("list")
@models_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--catalog", is_flag=True, help="List the models `theo pull NAME` can install.")
def list_models(models_dir: Path | None, as_json: bool, catalog: bool) -> None:
    """List the installed models and their size on disk."""
    registry = open_registry(models_dir)
    if catalog:
        _list_catalog(registry, as_json)
        return
    rows = [_describe(registry, manifest) for manifest in registry.list_models()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No models installed.")
        return
    headers = ("NAME", "TYPE", "ENGINE", "ARCHITECTURE", "SIZE")
    print_table(
        headers,
        [
            (r["name"], r["type"], r["engine"], r["architecture"], human_size(r["size_bytes"]))
            for r in rows
        ],
    )


def _list_catalog(registry: ModelRegistry, as_json: bool) -> None:
    rows: list[dict[str, Any]] = []
    table: list[tuple[str, ...]] = []
    for name, entry in sorted(load_catalog().models.items()):
        hf = entry.source.huggingface
        caps = entry.manifest.capabilities
        languages = "en" if caps.languages == ["en"] else str(len(caps.languages))
        sources = entry.source.kinds()
        installed = registry.has_model(name)
        rows.append(
            {
                "name": name,
                "languages": caps.languages,
                "translation": caps.translation,
                "sources": sources,
                "huggingface_repo": hf.repo if hf is not None else None,
                "installed": installed,
            }
        )
        yes = "yes" if caps.translation else "no"
        table.append((name, languages, yes, ", ".join(sources), "yes" if installed else ""))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(("NAME", "LANGUAGES", "TRANSLATES", "SOURCES", "INSTALLED"), table)


def _describe(registry: ModelRegistry, manifest: ModelManifest) -> dict[str, Any]:
    path = registry.get_model_path(manifest.name)
    return {
        "name": manifest.name,
        "type": manifest.type,
        "engine": manifest.engine,
        "architecture": manifest.capabilities.architecture,
        "version": manifest.version,
        "size_bytes": folder_size(path),
        "path": str(path.resolve()),
    }


def _require_model(registry: ModelRegistry, name: str) -> ModelManifest:
    if registry.has_model(name):
        return registry.get_manifest(name)
    installed = ", ".join(registry.names()) or "none"
    hint = f" Run 'theo pull {name}' to install it." if load_catalog().get(name) else ""
    fail(
        f"model '{name}' is not installed in {registry.models_dir}. "
        f"Installed models: {installed}.{hint}"
    )


@click.command()
@click.argument("model")
@models_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(model: str, models_dir: Path | None, as_json: bool) -> None:
    """Show an installed model's details.

    Name, type, engine, version, languages, capabilities, resources (memory, GPU),
    engine settings and path, from its theo.yaml. No server needed.
    """
    registry = open_registry(models_dir)
    manifest = _require_model(registry, model)
    info = _describe(registry, manifest)
    if as_json:
        dumped = manifest.model_dump(mode="json")
        click.echo(
            json.dumps({**dumped, "path": info["path"], "size_bytes": info["size_bytes"]}, indent=2)
        )
        return
    caps, res, engine = manifest.capabilities, manifest.resources, manifest.engine_config
    yes = {True: "yes", False: "no"}
    lines = [
        ("Name", manifest.name),
        ("Description", manifest.description or "-"),
        ("Type", manifest.type),
        ("Engine", manifest.engine),
        ("Version", manifest.version),
        ("Architecture", caps.architecture),
        (f"Languages ({len(caps.languages)})", ", ".join(caps.languages)),
        ("Memory", f"{res.memory_mb} MB"),
        ("GPU required", yes[res.gpu_required]),
        ("GPU recommended", yes[res.gpu_recommended]),
        ("Load time", f"~{res.load_time_seconds:g} s"),
        ("Word timestamps", yes[caps.word_timestamps]),
        ("Translation", yes[caps.translation]),
        ("Language detection", yes[caps.language_detection]),
        ("Initial prompt", yes[caps.initial_prompt]),
        ("Batch inference", yes[caps.batch_inference]),
        ("Engine config", " ".join(f"{k}={v}" for k, v in engine.model_dump().items())),
        ("Size on disk", human_size(info["size_bytes"])),
        ("Path", info["path"]),
    ]
    width = max(len(label) for label, _ in lines) + 2
    for label, value in lines:
        click.echo(f"{label + ':':<{width}}{value}")


@click.command()
@click.argument("model")
@models_dir_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def rm(model: str, models_dir: Path | None, yes: bool) -> None:
    """Remove an installed model (its folder and weights)."""
    registry = open_registry(models_dir)
    _require_model(registry, model)
    path = registry.get_model_path(model)
    size = human_size(folder_size(path))
    if not yes and not click.confirm(f"Remove {model} ({size}) at {path}?"):
        click.echo("Nothing removed.")
        sys.exit(1)
    remove_model(path)
    click.echo(f"Removed {model} ({size}).")
