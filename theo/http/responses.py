"""Build the HTTP response for a result, in the requested ``response_format``."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from theo.errors import ServiceUnavailableError, TheoError
from theo.formats import (
    format_json,
    format_srt,
    format_text,
    format_verbose_json,
    format_vtt,
)
from theo.http.validation import TranscriptionRequest
from theo.transcription import TranscriptionResult


def render_result(request: TranscriptionRequest, result: TranscriptionResult) -> Response:
    """json/verbose_json as JSON, text/srt/vtt as ``text/plain`` bodies.

    Transcriptions' JSON carries ``usage`` (the audio's seconds), as OpenAI's whisper-1
    does; translations' does not.
    """
    fmt = request.response_format
    usage = request.task == "transcribe"
    if fmt == "json":
        return JSONResponse(format_json(result, usage=usage))
    if fmt == "verbose_json":
        return JSONResponse(
            format_verbose_json(
                result,
                task=request.task,
                include_segments="segment" in request.granularities,
                include_words=request.word_timestamps,
                usage=usage,
            )
        )
    renderers = {"text": format_text, "srt": format_srt, "vtt": format_vtt}
    return PlainTextResponse(renderers[fmt](result))


def error_response(error: TheoError, retry_after: int | None = None) -> JSONResponse:
    """OpenAI's error body with the error's status (and Retry-After on 503).

    A 503 carries the error's own estimate when it has one, else ``retry_after``.
    """
    headers: dict[str, Any] = {}
    if isinstance(error, ServiceUnavailableError) and error.retry_after is not None:
        retry_after = error.retry_after
    if error.status_code == 503 and retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(error.to_openai(), status_code=error.status_code, headers=headers)
