"""``theo transcribe`` and ``theo translate``: send an audio file to a running server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click

from theo.cli.models_dir import open_registry
from theo.cli.output import fail
from theo.client import (
    DEFAULT_SERVER_URL,
    AudioRequest,
    ServerError,
    ServerUnavailableError,
    TheoClient,
)
from theo.formats import RESPONSE_FORMATS, ResponseFormat
from theo.transcription import Task

F = TypeVar("F", bound=Callable[..., Any])


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
            click.option(
                "--stream",
                is_flag=True,
                help="Print the text as it is transcribed, window by window (text format only).",
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


@click.command()
@audio_options("transcribe")
def transcribe(
    file: BinaryIO,
    model: str | None,
    response_format: ResponseFormat | None,
    stream: bool,
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
      theo transcribe lecture.mp3 --stream
      theo transcribe interview.mp3 --language fr --format srt > interview.srt
      cat note.ogg | theo transcribe - --model faster-whisper-base
    """
    if word_timestamps:
        if response_format not in (None, "verbose_json"):
            raise click.UsageError("--word-timestamps needs --format verbose_json.")
        response_format = "verbose_json"
    _send_audio(
        file,
        server,
        "transcribe",
        model,
        response_format,
        prompt=prompt,
        temperature=temperature,
        language=language,
        word_timestamps=word_timestamps,
        stream=stream,
    )


@click.command()
@audio_options("translate")
def translate(
    file: BinaryIO,
    model: str | None,
    response_format: ResponseFormat | None,
    stream: bool,
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
    _send_audio(
        file, server, "translate", model, response_format, prompt, temperature, stream=stream
    )


def _send_audio(
    file: BinaryIO,
    server: str,
    task: Task,
    model: str | None,
    response_format: ResponseFormat | None,
    prompt: str | None,
    temperature: float | None,
    *,
    language: str | None = None,
    word_timestamps: bool = False,
    stream: bool = False,
) -> None:
    """Send ``file`` to the server and print its answer (plain text unless a format is given).

    With ``stream``, the text is printed as the server sends it.
    """
    if stream and response_format not in (None, "text"):
        raise click.UsageError("--stream prints plain text; it cannot be used with --format.")
    if stream and word_timestamps:
        raise click.UsageError("--stream prints plain text, without --word-timestamps.")
    client = TheoClient(server)
    name = str(getattr(file, "name", "-"))
    audio = file.read()
    if not audio:
        fail(f"{'standard input' if name in ('-', '<stdin>') else name} is empty.")
    filename = "audio" if name in ("-", "<stdin>") else Path(name).name
    try:
        request = AudioRequest(
            task=task,
            model=model or _default_model(client, task),
            response_format=response_format or "text",
            language=language,
            prompt=prompt,
            temperature=temperature,
            word_timestamps=word_timestamps,
        )
        if stream:
            _print_stream(client, request, audio, filename)
            return
        body = client.audio(request, audio, filename)
    except ServerUnavailableError as exc:
        fail(str(exc))
    except ServerError as exc:
        fail(exc.message)
    click.echo(body, nl=not body.endswith("\n"))


def _print_stream(client: TheoClient, request: AudioRequest, audio: bytes, filename: str) -> None:
    """Print each delta as it arrives, then a newline (also before an error's message)."""
    printed = False
    try:
        for delta in client.stream_audio(request, audio, filename):
            click.echo(delta, nl=False)  # click flushes: each delta shows at once
            printed = True
    finally:
        if printed:
            click.echo()


def _default_model(client: TheoClient, task: Task) -> str:
    """The first installed model (one that translates, for translate); else the server's first."""
    manifests = open_registry(None).list_models()
    if task == "translate":
        translating = [m for m in manifests if m.capabilities.translation]
        manifests = translating or manifests
    if manifests:
        return manifests[0].name
    served = client.model_ids()
    if not served:
        fail(f"the server at {client.base_url} serves no models.")
    return served[0]
