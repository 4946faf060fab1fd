"""What the HTTP app needs from whoever runs the models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from theo.transcription import TranscriptionJob, TranscriptionResult


class TranscriptionBackend(Protocol):
    """Runs jobs on a named model. In production: the per-model BentoML runners."""

    async def transcribe(self, model: str, job: TranscriptionJob) -> TranscriptionResult:
        """Run one job on ``model``; raise a :class:`theo.errors.TheoError` on failure."""
        ...

    async def transcribe_many(
        self, model: str, jobs: list[TranscriptionJob]
    ) -> list[TranscriptionResult]:
        """Run ``jobs`` as one call, which the runner decodes as one batch (a long
        recording's consecutive windows); their results in order. Fails as ``transcribe``."""
        ...

    async def readiness(self) -> dict[str, bool]:
        """Whether each model's runner is ready to take work."""
        ...

    async def warm_up(self) -> None:
        """Get the runners ready for the first requests (best effort; runs at startup)."""
        ...


# The FastAPI dependency that gives the routes their backend (see create_app).
BackendProvider = Callable[[], TranscriptionBackend]
