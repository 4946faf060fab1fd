"""The API service's view of the runners: call one by model name, ask who is ready."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from bentoml.exceptions import BentoMLException, ServiceUnavailable

from theo.errors import InternalServerError, ModelNotFoundError, ServiceUnavailableError
from theo.transcription import TranscriptionJob, TranscriptionResult

logger = logging.getLogger(__name__)


class RunnerPool:
    """Implements :class:`theo.http.backend.TranscriptionBackend` over BentoML dependencies."""

    def __init__(self, clients: dict[str, Any]):
        self._clients = clients

    async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        client = self._clients.get(model)
        if client is None:
            raise ModelNotFoundError(model, sorted(self._clients))
        # A burst of concurrent calls occasionally loses the connection while writing
        # the body (aiohttp ClientOSError); the job never started, so retry once.
        for attempt in (1, 2):
            try:
                results = await client.to_async.transcribe([job])
                break
            except aiohttp.ClientOSError:
                if attempt == 2:
                    raise ServiceUnavailableError(
                        f"The runner for '{model}' is unreachable; retry shortly."
                    ) from None
                logger.warning("runner connection lost, retrying", extra={"model": model})
            except (TimeoutError, aiohttp.ClientConnectionError, ServiceUnavailable):
                raise ServiceUnavailableError(
                    f"The runner for '{model}' is not ready or is overloaded; retry shortly."
                ) from None
            except BentoMLException as exc:
                logger.error("runner call failed: %s", exc, extra={"model": model})
                raise InternalServerError() from None
        result = results[0]
        if isinstance(result, TranscriptionResult):
            return result
        return TranscriptionResult.model_validate(result)

    async def readiness(self) -> dict[str, bool]:
        async def ready(client: Any) -> bool:
            try:
                return bool(await client.to_async.is_ready(timeout=3))
            except Exception:
                return False

        names = sorted(self._clients)
        states = await asyncio.gather(*(ready(self._clients[name]) for name in names))
        return dict(zip(names, states, strict=True))
