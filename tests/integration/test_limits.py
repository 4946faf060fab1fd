"""Limits, against a server started with low ones: upload size, audio length, time, queue."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.conftest import FIXTURES, word_errors
from tests.integration.conftest import (
    BASE,
    TINY,
    RunningServer,
    post_audio,
    start_server,
    stop_server,
)

CLIP = FIXTURES / "1089-134691-0000.flac"  # "HE COULD WAIT NO LONGER" (2 s)
CLIP_TEXT = "HE COULD WAIT NO LONGER"

MAX_FILE_MB = 1
MAX_AUDIO_SECONDS = 120
TIMEOUT_SECONDS = 2
MAX_IN_FLIGHT = 2
RETRY_AFTER = 7
LIMITS = {
    "THEO_MAX_FILE_SIZE_MB": str(MAX_FILE_MB),
    "THEO_MAX_AUDIO_SECONDS": str(MAX_AUDIO_SECONDS),
    "THEO_REQUEST_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    # The deprecated name of THEO_MAX_IN_FLIGHT_PER_MODEL, on purpose: it must keep working.
    "THEO_MAX_QUEUE_PER_MODEL": str(MAX_IN_FLIGHT),
    "THEO_MAX_QUEUED_PER_MODEL": "0",  # no waiting room: past the limit is a 503 at once
    "THEO_RETRY_AFTER_SECONDS": str(RETRY_AFTER),
}
BOUNDARY = "theo-limits-test"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("limits"), env=LIMITS)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def limited_client(limited: RunningServer) -> OpenAI:
    return OpenAI(base_url=f"{limited.base_url}/v1", api_key="not-needed", max_retries=0)


def assert_error(response: httpx.Response, status: int, error_type: str, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == (error_type, code)
    return str(error["message"])


def assert_serving(server: RunningServer) -> None:
    response = post_audio(server, CLIP.name, CLIP.read_bytes())
    assert response.status_code == 200, response.text
    assert word_errors(CLIP_TEXT, response.json()["text"]) == 0


def encode(
    samples: np.ndarray, rate: int, fmt: str, codec: str, *, bit_rate: int = 0, **options: str
) -> bytes:
    """Encode int16 mono ``samples`` with PyAV."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono", options=options)
        assert isinstance(stream, av.AudioStream)
        if bit_rate:
            stream.bit_rate = bit_rate
        step = rate * 60  # one minute per frame keeps memory flat
        for start in range(0, len(samples), step):
            frame = av.AudioFrame.from_ndarray(
                samples[None, start : start + step], format="s16", layout="mono"
            )
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def read_pcm16(path: Path) -> np.ndarray:
    """A file's audio as 16 kHz mono int16 samples."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    with av.open(str(path), mode="r") as container:
        frames = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    return np.concatenate(frames)


def multipart_stream(file_bytes: Iterator[bytes], sent: list[int]) -> Iterator[bytes]:
    """A multipart body with no length: model field, then the file streamed chunk by chunk."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{TINY}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.flac"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield head
    for chunk in file_bytes:
        sent[0] += len(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def post_stream(server: RunningServer, body: Iterator[bytes]) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        timeout=60,
    )


def test_upload_over_the_cap_is_413_from_content_length(
    limited: RunningServer, limited_client: OpenAI
) -> None:
    too_big = b"\0" * (MAX_FILE_MB * 1024 * 1024 + 200_000)
    message = assert_error(
        post_audio(limited, "big.wav", too_big), 413, "invalid_request_error", "file_too_large"
    )
    assert f"{MAX_FILE_MB} MB" in message
    with pytest.raises(openai.APIStatusError) as raised:
        limited_client.audio.transcriptions.create(model=TINY, file=("big.wav", too_big))
    assert raised.value.status_code == 413
    assert_serving(limited)


def test_chunked_upload_is_not_read_past_the_cap(limited: RunningServer) -> None:
    sent = [0]
    endless = iter(lambda: b"\0" * 65536, None)  # up to 1 GiB if nobody stops it
    one_gib = (chunk for chunk, _ in zip(endless, range(16384), strict=False))
    started = time.monotonic()
    response = post_stream(limited, multipart_stream(one_gib, sent))
    assert_error(response, 413, "invalid_request_error", "file_too_large")
    assert response.headers["connection"] == "close"
    # The server stopped reading at the cap; what else left the client sat in socket buffers.
    assert sent[0] < (MAX_FILE_MB + 32) * 1024 * 1024, sent[0]
    assert time.monotonic() - started < 10
    assert_serving(limited)


def test_chunked_upload_under_the_cap_is_transcribed(limited: RunningServer) -> None:
    data = CLIP.read_bytes()
    chunks = (data[i : i + 4096] for i in range(0, len(data), 4096))
    response = post_stream(limited, multipart_stream(chunks, [0]))
    assert response.status_code == 200, response.text
    assert word_errors(CLIP_TEXT, response.json()["text"]) == 0


def test_hours_of_compressed_silence_are_refused_after_the_limit(limited: RunningServer) -> None:
    two_hours = np.zeros(2 * 3600 * 8000, dtype=np.int16)
    data = encode(two_hours, 8000, "flac", "flac", frame_size="32768")
    assert len(data) < 64_000  # 2 h of audio in a few tens of KB
    started = time.monotonic()
    response = post_audio(limited, "silence.flac", data)
    elapsed = time.monotonic() - started
    message = assert_error(response, 400, "invalid_request_error", "audio_too_long")
    assert f"{MAX_AUDIO_SECONDS} seconds" in message
    assert elapsed < 10, f"decoding should stop at the limit, took {elapsed:.1f}s"
    assert_serving(limited)


def test_queue_cap_answers_503_with_retry_after(limited: RunningServer) -> None:
    data = CLIP.read_bytes()
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda _: post_audio(limited, CLIP.name, data), range(12)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 503}, statuses
    for response in responses:
        if response.status_code == 503:
            # Until two requests have finished there is no drain rate: the configured value.
            retry_after = int(response.headers["retry-after"])
            assert retry_after == RETRY_AFTER or 1 <= retry_after <= 60, retry_after
            message = assert_error(response, 503, "server_error", "model_overloaded")
            assert TINY in message
        else:
            assert word_errors(CLIP_TEXT, response.json()["text"]) == 0
    assert_serving(limited)


def test_the_deprecated_limit_name_still_works_and_says_so(limited: RunningServer) -> None:
    assert "THEO_MAX_QUEUE_PER_MODEL is deprecated" in limited.log()


def test_a_model_at_its_limit_refuses_before_decoding(limited: RunningServer) -> None:
    # Two long requests hold both of tiny.en's slots; an undecodable upload sent meanwhile
    # gets the 503 (not the decoder's 400): nothing of it was decoded.
    speech = np.tile(read_pcm16(FIXTURES / "jfk.flac"), 8)  # 88 s: several windows
    long_audio = encode(speech, 16000, "ogg", "libopus", bit_rate=16000)
    with ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT) as pool:
        holders = [
            pool.submit(post_audio, limited, "long.ogg", long_audio) for _ in range(MAX_IN_FLIGHT)
        ]
        time.sleep(0.5)
        refused = post_audio(limited, "garbage.wav", b"RIFF, but not audio at all" * 100)
        for holder in holders:
            holder.result()
    message = assert_error(refused, 503, "server_error", "model_overloaded")
    assert TINY in message
    assert_error(
        post_audio(limited, "garbage.wav", b"not audio" * 100),
        400,
        "invalid_request_error",
        "invalid_audio",
    )


def test_request_over_the_timeout_is_504(limited: RunningServer) -> None:
    # 110 s of speech on the base model with word timestamps takes well over 2 s on CPU.
    speech = np.tile(read_pcm16(FIXTURES / "jfk.flac"), 10)
    data = encode(speech, 16000, "ogg", "libopus", bit_rate=16000)
    started = time.monotonic()
    response = post_audio(
        limited,
        "long.ogg",
        data,
        model=BASE,
        response_format="verbose_json",
        **{"timestamp_granularities[]": "word"},
    )
    elapsed = time.monotonic() - started
    message = assert_error(response, 504, "server_error", "timeout")
    assert f"{TIMEOUT_SECONDS} seconds" in message
    assert elapsed < TIMEOUT_SECONDS + 3
    # The cancelled job may still hold the CPU for a while; the service comes back on its own.
    deadline = time.monotonic() + 60
    while post_audio(limited, CLIP.name, CLIP.read_bytes()).status_code != 200:
        assert time.monotonic() < deadline, "no successful request within 60 s of the timeout"
        time.sleep(1)


def test_slow_upload_is_cut_by_the_timeout(limited: RunningServer) -> None:
    def trickle() -> Iterator[bytes]:
        for _ in range(40):
            time.sleep(0.25)
            yield b"\0" * 1024

    started = time.monotonic()
    response = post_stream(limited, multipart_stream(trickle(), [0]))
    assert_error(response, 504, "server_error", "timeout")
    assert time.monotonic() - started < TIMEOUT_SECONDS + 3
