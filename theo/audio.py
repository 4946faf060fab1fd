"""Decode any container/codec PyAV (FFmpeg) reads into 16 kHz mono samples, piece by piece.

The same steps as ``faster_whisper.decode_audio`` but without its ``gc.collect()``:
a full collection on every request cost ~0.3 s inside a large server process while
holding the GIL. :func:`iter_pcm16` hands the audio on as it is decoded (int16, half the
size of float32), so a long upload never sits in memory whole; it stops once the audio
exceeds ``max_seconds``, so a few KB of compressed silence cannot become hours of work.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

import av
import numpy as np

from theo.errors import AudioDecodeError, AudioTooLongError
from theo.transcription import SAMPLE_RATE

# How much audio each piece from iter_pcm16 holds at most (it may hold a little more).
PIECE_SECONDS = 20.0


def iter_pcm16(
    source: bytes | BinaryIO, *, max_seconds: float | None = None
) -> Iterator[np.ndarray]:
    """Decode ``source`` to int16 mono pieces at 16 kHz, each about ``PIECE_SECONDS`` long.

    Raises :class:`AudioDecodeError` if it is not decodable audio or has no samples (before
    or while yielding), and :class:`AudioTooLongError` past ``max_seconds``.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    start = source.tell()
    if source.seek(0, io.SEEK_END) == start:
        raise AudioDecodeError("The audio file is empty.")
    source.seek(start)
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
    piece_samples = int(PIECE_SECONDS * SAMPLE_RATE)
    # Frames are small (1,152 samples in a FLAC file from FFmpeg): turned into arrays one by
    # one they cost a third of the decoding CPU; a FIFO hands them on a piece at a time.
    fifo = av.AudioFifo()
    total = 0
    try:
        with av.open(source, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioDecodeError("The file has no audio stream.")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in _resampled(container, resampler):
                frame.pts = None  # the FIFO checks timestamps run on; the resampler's may not
                fifo.write(frame)
                total += frame.samples
                if limit is not None and total > limit:
                    raise AudioTooLongError(
                        f"The audio is longer than the maximum of {max_seconds:g} seconds."
                    )
                if fifo.samples >= piece_samples:
                    yield _pcm(fifo)
    except (AudioDecodeError, AudioTooLongError):
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise AudioDecodeError(
            f"The audio file could not be decoded ({reason}); is it a supported audio format?"
        ) from None
    if total == 0:
        raise AudioDecodeError("The audio file contains no audio samples.")
    if fifo.samples:
        yield _pcm(fifo)


def _pcm(fifo: av.AudioFifo) -> np.ndarray:
    """All the samples in ``fifo``, as one int16 array."""
    frame = fifo.read()
    assert frame is not None
    return frame.to_ndarray().reshape(-1)


def pcm16_to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 samples as float32 in [-1, 1), the form Whisper and Silero take."""
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


def decode_audio(data: bytes, *, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``data`` to float32 mono samples at 16 kHz (all of it, in memory).

    Raises :class:`AudioDecodeError` if it is not decodable audio or has no samples,
    and :class:`AudioTooLongError` past ``max_seconds``.
    """
    pieces = list(iter_pcm16(data, max_seconds=max_seconds))
    return pcm16_to_float32(np.concatenate(pieces))


def _resampled(
    container: av.container.InputContainer, resampler: av.AudioResampler
) -> Iterator[av.AudioFrame]:
    frames = container.decode(audio=0)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except av.InvalidDataError:
            continue  # skip a corrupt packet, as faster-whisper does
        frame.pts = None
        yield from resampler.resample(frame)
    yield from resampler.resample(None)
