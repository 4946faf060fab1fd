"""The API service's view of the runners: route each job to its model's least busy lane."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
from bentoml.exceptions import BentoMLException, ServiceUnavailable

from theo.errors import InternalServerError, ModelNotFoundError, ServiceUnavailableError
from theo.serving.bentoml_internals import RUNNER_CONNECTION_ERRORS, batcher_training_rounds
from theo.serving.runner import DEDICATED_LANES, LIVE_LANES, LONG_FORM_LANES, PARTIAL_LANE
from theo.transcription import TranscriptionJob, TranscriptionResult

logger = logging.getLogger(__name__)

# How long a runner may take to answer /readyz before it counts as down.
READY_TIMEOUT_SECONDS = 3
# BentoML's batcher trains itself on each batching API's first batches, holding some open
# (up to ~1 s) for more jobs. Without a warm-up the first users pay that wait; with it,
# silent jobs (not decoded) do.
WARM_UP_ROUNDS = batcher_training_rounds()
_SILENCE = TranscriptionJob.from_samples(np.zeros(1600, dtype=np.float32))


class RunnerRouter:
    """Implements :class:`theo.http.backend.TranscriptionBackend` over BentoML dependencies.

    Sends each job to the least busy lane of its model's runner service, and keeps track
    of runners that went down.
    """

    def __init__(self, clients: dict[str, Any], lanes: dict[str, list[str]] | None = None):
        self._clients = clients
        # Each model's batching APIs (its runner service's ``apis``: the lanes of
        # theo/serving/runner.py) and how many of this process's requests each holds now:
        # files' lanes, long recordings' windows' lanes, live utterances' lanes, and the
        # lane of live partial re-decodes.
        names = {model: (lanes or {}).get(model, ["transcribe"]) for model in clients}
        self._in_flight = {
            model: dict.fromkeys([n for n in names[model] if n not in DEDICATED_LANES], 0)
            for model in clients
        }
        self._long_form_in_flight = {
            model: dict.fromkeys([n for n in names[model] if n in LONG_FORM_LANES], 0)
            for model in clients
        }
        self._live_in_flight = {
            model: dict.fromkeys([n for n in names[model] if n in LIVE_LANES], 0)
            for model in clients
        }
        self._partial_in_flight = {
            model: dict.fromkeys([n for n in names[model] if n == PARTIAL_LANE], 0)
            for model in clients
        }
        # Models whose runner dropped a call or failed a probe. Their calls are probed
        # first: a connection to a dead runner's socket would wait in its backlog until
        # a runner accepts it, which in a container (no respawn) is never.
        self._down: set[str] = set()

    async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        """Run one job: a long recording's window on the long-form lanes, others (and all
        jobs, on a runner without long-form lanes) on the file lanes."""
        (result,) = await self.transcribe_many(model, [job])
        return result

    async def transcribe_many(
        self, model: str, jobs: list[TranscriptionJob]
    ) -> list[TranscriptionResult]:
        """Run jobs in one call on one lane, as :meth:`transcribe` would route them."""
        long_form = all(job.long_form for job in jobs)
        lanes = (self._long_form_in_flight.get(model) if long_form else None) or (
            self._in_flight.get(model)
        )
        return await self._run(model, jobs, lanes)

    async def transcribe_live(
        self, model: str, jobs: list[TranscriptionJob], *, partial: bool = False
    ) -> list[TranscriptionResult]:
        """Run a live session's jobs (one call, batched as one) on the model's live lanes.

        ``partial``: re-decodes of growing utterances, on a lane of their own so they
        never hold a final decode back. A runner without live lanes runs them as files.
        """
        lanes = (
            (self._partial_in_flight.get(model) if partial else None)
            or self._live_in_flight.get(model)
            or self._in_flight.get(model)
        )
        return await self._run(model, jobs, lanes)

    async def _run(
        self, model: str, jobs: list[TranscriptionJob], lanes: dict[str, int] | None
    ) -> list[TranscriptionResult]:
        client = self._clients.get(model)
        if client is None or lanes is None:
            raise ModelNotFoundError(model, sorted(self._clients))
        if model in self._down and not await self._probe(model, client):
            raise ServiceUnavailableError(f"The runner for '{model}' is down; retry shortly.")
        results = await self._call(model, client, jobs, lanes)
        return [
            r if isinstance(r, TranscriptionResult) else TranscriptionResult.model_validate(r)
            for r in results
        ]

    async def _call(
        self, model: str, client: Any, jobs: list[TranscriptionJob], lanes: dict[str, int]
    ) -> list[Any]:
        # A dropped connection has two causes: the runner died (fail fast: 503), or
        # BentoML's client recycled its session under in-flight calls (it does so every
        # ``runner_connection.max_requests`` calls). Retry once, only if the runner is up.
        unreachable = ServiceUnavailableError(
            f"The runner for '{model}' is unreachable; retry shortly."
        )
        try:
            return await self._transcribe_once(model, client, jobs, lanes)
        except _Disconnected as lost:
            if not await self._probe(model, client):
                logger.warning("runner unreachable (%s)", lost, extra={"model": model})
                raise unreachable from None
            logger.warning("runner connection lost (%s), retrying", lost, extra={"model": model})
        try:
            return await self._transcribe_once(model, client, jobs, lanes)
        except _Disconnected as lost:
            self._down.add(model)
            logger.warning("runner unreachable (%s)", lost, extra={"model": model})
            raise unreachable from None

    async def _transcribe_once(
        self, model: str, client: Any, jobs: list[TranscriptionJob], lanes: dict[str, int]
    ) -> list[Any]:
        """One call on the least busy of ``lanes``."""
        lane = min(lanes, key=lanes.__getitem__)
        lanes[lane] += 1
        try:
            return await _call_lane(model, getattr(client.to_async, lane), jobs)
        finally:
            lanes[lane] -= 1

    async def _probe(self, model: str, client: Any) -> bool:
        """Ask the runner whether it is ready, and remember the answer."""
        ready = await _is_ready(client)
        if ready:
            self._down.discard(model)
        else:
            self._down.add(model)
        return ready

    async def warm_up(self) -> None:
        """Once each runner is ready, send every lane its batcher's training batches."""
        await asyncio.gather(*(self._warm_up(model) for model in self._clients))

    async def _warm_up(self, model: str) -> None:
        client = self._clients[model]
        while not await _is_ready(client):
            await asyncio.sleep(1)
        lanes = [
            *self._in_flight[model],
            *self._long_form_in_flight[model],
            *self._live_in_flight[model],
            *self._partial_in_flight[model],
        ]
        try:
            for lane in lanes:
                call = getattr(client.to_async, lane)
                for size in WARM_UP_ROUNDS:
                    await asyncio.gather(*(call([_SILENCE]) for _ in range(size)))
        except Exception as exc:  # a warm-up failure only costs the first requests time
            logger.warning("runner warm-up failed (%s)", exc, extra={"model": model})
            return
        logger.info("runner warmed up", extra={"model": model})

    async def readiness(self) -> dict[str, bool]:
        names = sorted(self._clients)
        states = await asyncio.gather(*(self._probe(name, self._clients[name]) for name in names))
        return dict(zip(names, states, strict=True))


class _Disconnected(Exception):
    """The connection to the runner broke before its answer arrived."""


async def _call_lane(model: str, lane: Any, jobs: list[TranscriptionJob]) -> list[Any]:
    try:
        results = await lane(jobs)
    except (TimeoutError, ServiceUnavailable):
        raise ServiceUnavailableError(
            f"The runner for '{model}' is not ready or is overloaded; retry shortly."
        ) from None
    except BentoMLException as exc:
        logger.error("runner call failed: %s", exc, extra={"model": model})
        raise InternalServerError() from None
    except RUNNER_CONNECTION_ERRORS as exc:
        raise _Disconnected(type(exc).__name__) from None
    return list(results)


async def _is_ready(client: Any) -> bool:
    try:
        return bool(await client.to_async.is_ready(timeout=READY_TIMEOUT_SECONDS))
    except Exception:
        return False
