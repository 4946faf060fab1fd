"""``theo live``: stream an audio file through the realtime API as a microphone would.

A demo of live transcription and a debugging tool: the file is sent at real-time pace (or
faster) to ``/v1/realtime``, and the text is printed as it comes: partial text while an
utterance is spoken, then its line once it is complete. ``--events`` prints every server
event instead, one JSON object a line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import click
import numpy as np

from theo.cli.output import fail
from theo.client import DEFAULT_SERVER_URL
from theo.errors import AudioDecodeError
from theo.transcription import SAMPLE_RATE

RATE = 24_000  # what the realtime API takes as PCM


def realtime_url(server: str, model: str | None) -> str:
    """The WebSocket URL of ``server``'s realtime API (http -> ws, https -> wss)."""
    parts = urlsplit(server)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = {"intent": "transcription", **({"model": model} if model else {})}
    path = parts.path.rstrip("/") + "/v1/realtime"
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def pcm24(path: Path) -> bytes:
    """Any audio FFmpeg reads as 24 kHz mono 16-bit PCM."""
    from theo.audio import decode_audio
    from theo.realtime.audio import Resampler

    samples = decode_audio(path.read_bytes())
    upsampled = Resampler(RATE, SAMPLE_RATE)(samples)
    pcm: bytes = (np.clip(upsampled, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    return pcm


@dataclass
class _Printer:
    """Prints the text of each item as its events arrive."""

    events: bool
    shown: dict[str, str] = field(default_factory=dict)  # item -> text printed so far
    open_item: str | None = None
    pending: set[str] = field(default_factory=set)  # committed, not yet answered
    updates: int = 0  # session.updated events seen
    errors: int = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        item = event.get("item_id")
        if kind == "session.updated":
            self.updates += 1
        elif kind == "input_audio_buffer.committed" and item:
            self.pending.add(item)
        elif kind.endswith("input_audio_transcription.completed") or kind.endswith(
            "input_audio_transcription.failed"
        ):
            self.pending.discard(item or "")
        if self.events:
            click.echo(json.dumps(event))
            return
        if kind.endswith("input_audio_transcription.delta") and item:
            self._write(item, event.get("delta") or "")
        elif kind.endswith("input_audio_transcription.completed") and item:
            transcript = event.get("transcript") or ""
            if transcript and self.shown.get(item) != transcript:
                # The final decode changed words already shown: show it whole.
                self._end_line()
                self._write(item, "» " + transcript)
            self._end_line()
        elif kind.endswith("input_audio_transcription.failed"):
            self._end_line()
            click.echo(f"[transcription failed: {event['error'].get('message')}]", err=True)
            self.errors += 1
        elif kind == "error":
            self._end_line()
            click.echo(f"[error: {event['error'].get('message')}]", err=True)
            self.errors += 1

    def _write(self, item: str, text: str) -> None:
        if not text:
            return
        if self.open_item not in (None, item):
            self._end_line()
        self.open_item = item
        self.shown[item] = self.shown.get(item, "") + text
        click.echo(text, nl=False)
        sys.stdout.flush()

    def _end_line(self) -> None:
        if self.open_item is not None:
            click.echo()
            self.open_item = None


async def stream(
    url: str,
    audio: bytes,
    *,
    session: dict[str, Any],
    speed: float,
    chunk_ms: int,
    api_key: str | None,
    printer: _Printer,
    tail_seconds: float,
) -> None:
    """Send ``audio`` (then ``tail_seconds`` of silence) and print what comes back."""
    import websockets
    from websockets.typing import Subprotocol

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with websockets.connect(
        url, additional_headers=headers, subprotocols=[Subprotocol("realtime")], max_size=None
    ) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": session}))
        receiver = asyncio.create_task(_receive(ws, printer))
        audio += bytes(2 * int(tail_seconds * RATE))
        chunk = 2 * max(1, int(chunk_ms * RATE / 1000))
        began = time.monotonic()
        for position in range(0, len(audio), chunk):
            if speed > 0:
                delay = began + position / 2 / RATE / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            piece = base64.b64encode(audio[position : position + chunk]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": piece}))
        if session["audio"]["input"]["turn_detection"] is None:
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        # The server answers events in order: once this update is answered, every commit
        # the audio made is known, and what is left is to wait for their transcripts.
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription"}}))
        while (printer.updates < 2 or printer.pending) and not receiver.done():
            await asyncio.sleep(0.05)
        receiver.cancel()
    printer._end_line()


async def _receive(ws: Any, printer: _Printer) -> None:
    async for message in ws:
        printer(json.loads(message))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--model", help="Model to use (default: the server's default model).")
@click.option("-l", "--language", help="Spoken language, ISO-639-1 (default: detect).")
@click.option("--prompt", help="Prompt: vocabulary, spelling, style.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Pace: 1 is real time, 2 twice as fast, 0 as fast as possible.",
)
@click.option(
    "--chunk-ms",
    type=click.IntRange(10, 1000),
    default=40,
    show_default=True,
    help="Audio per append event.",
)
@click.option(
    "--silence-ms",
    type=click.IntRange(0, 10_000),
    default=500,
    show_default=True,
    help="Server VAD: silence that ends an utterance.",
)
@click.option("--no-vad", is_flag=True, help="No server VAD: the whole file is one commit.")
@click.option("--events", is_flag=True, help="Print every server event as a JSON line.")
@click.option(
    "--server",
    envvar="THEO_SERVER_URL",
    default=DEFAULT_SERVER_URL,
    show_default=True,
    help="URL of the Theo server (env THEO_SERVER_URL).",
)
@click.option(
    "--api-key",
    envvar="THEO_API_KEY",
    help="The server's API key, if it has one (env THEO_API_KEY).",
)
def live(
    file: Path,
    model: str | None,
    language: str | None,
    prompt: str | None,
    speed: float,
    chunk_ms: int,
    silence_ms: int,
    no_vad: bool,
    events: bool,
    server: str,
    api_key: str | None,
) -> None:
    """Stream an audio file through the realtime API and print the text as it comes.

    FILE is any audio FFmpeg reads. It is sent as a microphone would send it: 24 kHz PCM
    in small pieces at real-time pace (--speed to change). Partial text appears while an
    utterance is spoken; each utterance ends its line once complete.

    \b
    Examples:
      theo live meeting.wav
      theo live interview.mp3 --model faster-whisper-base --language fr
      theo live call.wav --speed 0 --events > events.jsonl
    """
    try:
        audio = pcm24(file)
    except AudioDecodeError as exc:
        fail(exc.message)
    turn_detection = None if no_vad else {"type": "server_vad", "silence_duration_ms": silence_ms}
    transcription = {"language": language, "prompt": prompt, **({"model": model} if model else {})}
    session = {
        "type": "transcription",
        "audio": {"input": {"transcription": transcription, "turn_detection": turn_detection}},
    }
    printer = _Printer(events=events)
    try:
        asyncio.run(
            stream(
                realtime_url(server, model),
                audio,
                session=session,
                speed=speed,
                chunk_ms=chunk_ms,
                api_key=api_key,
                printer=printer,
                tail_seconds=(silence_ms + 500) / 1000,
            )
        )
    except OSError as exc:
        fail(f"cannot reach the server at {server} ({exc.strerror or exc}).")
    except Exception as exc:  # websockets' handshake and connection errors
        fail(f"the realtime session failed: {exc}")
    if printer.errors:
        sys.exit(1)
