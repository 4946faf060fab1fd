"""The ``theo`` command line: serve, transcribe, translate, and manage installed models.

One module per concern: ``serve`` (the server), ``audio`` (``transcribe``/``translate``
through a running server), ``live`` (a file through the realtime API), ``models``
(``list``/``inspect``/``rm``), ``pull``.
"""

from __future__ import annotations

import logging

import click

from theo import __version__
from theo.cli import audio, live, models, pull, serve


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


for command in (
    serve.serve,
    audio.transcribe,
    audio.translate,
    live.live,
    models.list_models,
    models.inspect,
    models.rm,
    pull.pull,
):
    main.add_command(command)

__all__ = ["main"]
