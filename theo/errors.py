"""Errors a user can cause or meet, each carrying its HTTP status and OpenAI error fields.

They are raised anywhere in Theo and turned into OpenAI's
``{"error": {"message", "type", "param", "code"}}`` body once, at the HTTP edge.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TheoError(Exception):
    """Base class: an error with an HTTP status and OpenAI's error fields."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code

    def to_openai(self) -> dict[str, Any]:
        """The error as OpenAI's response body."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(TheoError):
    """A field is missing, malformed or not supported (400)."""

    status_code = 400
    error_type = "invalid_request_error"


class AudioDecodeError(InvalidRequestError):
    """The upload is not audio we can decode, or holds no samples (400)."""

    default_code = "invalid_audio"

    def __init__(self, message: str):
        super().__init__(message, param="file")


class AudioTooLongError(InvalidRequestError):
    """The decoded audio is longer than the configured maximum (400)."""

    default_code = "audio_too_long"

    def __init__(self, message: str):
        super().__init__(message, param="file")


class ModelNotFoundError(TheoError):
    """No installed model has this name (404)."""

    status_code = 404
    default_code = "model_not_found"
    error_type = "invalid_request_error"

    def __init__(self, name: str, installed: list[str]):
        listing = ", ".join(installed) if installed else "none"
        super().__init__(
            f"The model '{name}' does not exist. Installed models: {listing}.", param="model"
        )
        self.name = name


class FileTooLargeError(TheoError):
    """The upload is larger than the configured cap (413)."""

    status_code = 413
    error_type = "invalid_request_error"
    default_code = "file_too_large"

    def __init__(self, limit_bytes: int):
        # Rounded: the byte cap is truncated from the configured MB (0.05 MB -> 52428 bytes).
        mb = round(limit_bytes / (1024 * 1024), 3)
        super().__init__(f"Maximum content size limit ({mb:g} MB) exceeded.", param="file")


class AuthenticationError(TheoError):
    """The bearer token is missing or wrong (401, as OpenAI answers a bad API key)."""

    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class RequestTimeoutError(TheoError):
    """The request took longer than the configured timeout (504)."""

    status_code = 504
    error_type = "server_error"
    default_code = "timeout"


class ServiceUnavailableError(TheoError):
    """The model's runner is not ready or is overloaded (503, with Retry-After).

    ``retry_after`` is the server's estimate in seconds, when it has one; without it the
    configured ``retry_after_seconds`` is sent.
    """

    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.retry_after = retry_after


class ClientDisconnectedError(TheoError):
    """The client hung up before its answer was ready (499, nginx's code; nobody reads it)."""

    status_code = 499
    error_type = "invalid_request_error"
    default_code = "client_disconnected"


class InternalServerError(TheoError):
    """Anything unexpected (500); the message never carries a stack trace."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str = "The server had an error while processing your request."):
        super().__init__(message)
