"""Decode any container/codec PyAV (FFmpeg) reads into 16 kHz mono float32 samples.

The same steps as ``faster_whisper.decode_audio`` but without its ``gc.collect()``:
a full collection on every request cost ~0.3 s inside a large server process while
holding the GIL. It also stops early once the audio exceeds ``max_seconds``, so a
few KB of compressed silence cannot turn into hours of decoding.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import av
import numpy as np

from theo.errors import AudioDecodeError, AudioTooLongError
from theo.transcription import SAMPLE_RATE


def decode_audio(data: bytes, *, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``data`` to float32 mono samples at 16 kHz.

    Raises :class:`AudioDecodeError` if it is not decodable audio or has no samples,
    and :class:`AudioTooLongError` past ``max_seconds``.
    """
    if not data:
        raise AudioDecodeError("The audio file is empty.")
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioDecodeError("The file has no audio stream.")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in _resampled(container, resampler):
                array = frame.to_ndarray().reshape(-1)
                chunks.append(array)
                total += array.shape[0]
                if limit is not None and total > limit:
                    raise AudioTooLongError(
                        f"The audio is longer than the maximum of {max_seconds:g} seconds."
                    )
    except (AudioDecodeError, AudioTooLongError):
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise AudioDecodeError(
            f"The audio file could not be decoded ({reason}); is it a supported audio format?"
        ) from None
    if total == 0:
        raise AudioDecodeError("The audio file contains no audio samples.")
    return (np.concatenate(chunks).astype(np.float32) / 32768.0).astype(np.float32)


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
