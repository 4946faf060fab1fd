"""A thin HTTP client of a running Theo server: what ``theo transcribe`` and ``translate`` use.

It sends exactly the multipart fields OpenAI's audio API defines, so it works against
any OpenAI-compatible server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx

from theo.formats import ResponseFormat
from theo.transcription import Task

DEFAULT_SERVER_URL = "http://localhost:8000"
# The server lets a request run this long (service.py's traffic timeout).
REQUEST_TIMEOUT_SECONDS = 900.0


class ServerUnavailableError(RuntimeError):
    """Nothing answers at the server URL."""

    def __init__(self, base_url: str):
        super().__init__(f"server not available at {base_url}. Run 'theo serve' first.")
        self.base_url = base_url


class ServerError(RuntimeError):
    """The server answered with an error; the message is the server's own."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class AudioRequest:
    """One transcription or translation request, as the CLI options describe it."""

    task: Task
    model: str
    response_format: ResponseFormat = "text"
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    word_timestamps: bool = False
    stream: bool = False

    def form(self) -> dict[str, Any]:
        """The multipart form fields (besides ``file``), as OpenAI names them."""
        fields: dict[str, Any] = {"model": self.model, "response_format": self.response_format}
        if self.stream:
            fields["stream"] = "true"
        if self.language is not None:
            fields["language"] = self.language
        if self.prompt is not None:
            fields["prompt"] = self.prompt
        if self.temperature is not None:
            fields["temperature"] = str(self.temperature)
        if self.word_timestamps:
            fields["timestamp_granularities[]"] = ["word"]
        return fields


class TheoClient:
    """Calls one server; every failure becomes :class:`ServerUnavailableError` or
    :class:`ServerError`."""

    def __init__(self, base_url: str, *, timeout: float = REQUEST_TIMEOUT_SECONDS):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def model_ids(self) -> list[str]:
        """The models the server serves (``GET /v1/models``)."""
        body = self._request("GET", "/v1/models").json()
        return [item["id"] for item in body.get("data", [])]

    def audio(self, request: AudioRequest, audio: bytes, filename: str) -> str:
        """POST the audio to ``/v1/audio/transcriptions|translations``; the response body."""
        response = self._request(
            "POST", _route(request), data=request.form(), files={"file": (filename, audio)}
        )
        return response.text

    def stream_audio(self, request: AudioRequest, audio: bytes, filename: str) -> Iterator[str]:
        """POST the audio with ``stream=true``; the transcript's deltas as they arrive.

        An ``error`` event (the server failed after the stream started) raises
        :class:`ServerError` with the server's message.
        """
        streamed = replace(request, stream=True)
        try:
            with httpx.stream(
                "POST",
                f"{self.base_url}{_route(request)}",
                data=streamed.form(),
                files={"file": (filename, audio)},
                timeout=self.timeout,
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ServerError(response.status_code, _error_message(response))
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # the blank line between events, or an SSE comment
                    event = json.loads(line[len("data:") :])
                    if event.get("type") == "transcript.text.delta":
                        yield event["delta"]
                    elif "error" in event:
                        raise ServerError(200, event["error"].get("message", "stream failed"))
        except httpx.ConnectError:
            raise ServerUnavailableError(self.base_url) from None
        except httpx.HTTPError as exc:
            raise ServerError(0, f"request to {self.base_url} failed: {exc}") from None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(
                method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs
            )
        except httpx.ConnectError:
            raise ServerUnavailableError(self.base_url) from None
        except httpx.HTTPError as exc:
            raise ServerError(0, f"request to {self.base_url} failed: {exc}") from None
        if response.status_code >= 400:
            raise ServerError(response.status_code, _error_message(response))
        return response


def _route(request: AudioRequest) -> str:
    return "/v1/audio/" + ("transcriptions" if request.task == "transcribe" else "translations")


def _error_message(response: httpx.Response) -> str:
    """OpenAI's ``{"error": {"message": ...}}``, or the start of whatever came back."""
    try:
        body = response.json()
        message = body["error"]["message"]
        if isinstance(message, str) and message:
            return message
    except (ValueError, KeyError, TypeError):
        pass
    text = response.text.strip()[:500] or response.reason_phrase
    return f"HTTP {response.status_code}: {text}"
