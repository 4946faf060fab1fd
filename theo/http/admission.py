"""Per-model admission: a bounded number of requests in progress, 503 past it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from theo.errors import ServiceUnavailableError


class ModelAdmission:
    """Lets at most ``limit`` requests per model run at once (all windows of a request count once).

    A request past the limit is refused at once with 503 + Retry-After instead of
    queueing behind work that cannot finish in time. Counts are per API worker process.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._active: Counter[str] = Counter()

    def active(self, model: str) -> int:
        """Requests for ``model`` in progress now."""
        return self._active[model]

    @contextmanager
    def admit(self, model: str) -> Iterator[None]:
        """Hold one of ``model``'s slots for the block; raise 503 if none is free."""
        if self._active[model] >= self.limit:
            raise ServiceUnavailableError(
                f"The model '{model}' already has {self.limit} requests in progress; "
                "retry shortly.",
                code="model_overloaded",
            )
        self._active[model] += 1
        try:
            yield
        finally:
            self._active[model] -= 1
