"""Theo's BentoML bundle: one runner service per installed model, and the API service.

Serve with ``bentoml serve service:Theo``. The logic lives in ``theo/``; this file wires
the registry (which models exist), the runner services and the HTTP app together.
"""

from __future__ import annotations

import asyncio
import logging

import bentoml

from theo.errors import ServiceUnavailableError
from theo.http.app import create_app
from theo.http.backend import TranscriptionBackend
from theo.http.web import WebPages
from theo.log import configure_logging
from theo.serving.bundle import BundleArguments, load_bundle
from theo.serving.router import RunnerRouter
from theo.serving.runner import make_runner_service
from theo.settings import get_settings

settings = get_settings()
configure_logging(settings.log_format, settings.log_level)
for warning in settings.deprecation_warnings():
    logging.getLogger("theo").warning(warning)
# A built bento serves the models its arguments name (theo/serving/bundle.py).
bundle = load_bundle(settings.models_dir, bentoml.use_arguments(BundleArguments))
registry = bundle.registry
runners = {
    manifest.name: make_runner_service(
        manifest,
        registry.get_model_path(manifest.name),
        stored_tag=bundle.stored_tags.get(manifest.name),
    )
    for manifest in registry.list_models()
}


def current_router() -> TranscriptionBackend:
    """The API service's runner router: the backend every route depends on."""
    try:
        service: Theo = bentoml.get_current_service()
    except bentoml.exceptions.BentoMLException:
        raise ServiceUnavailableError("The server is starting; retry shortly.") from None
    return service.router


app = create_app(settings, registry, current_router)


class Theo:
    """The entry service: validates, decodes and routes each request to its model's runner."""

    def __init__(self) -> None:
        self.router = RunnerRouter(
            {model: getattr(self, runner.name) for model, runner in runners.items()},
            lanes={model: list(runner.apis) for model, runner in runners.items()},
        )
        self._warm_up: asyncio.Task[None] | None = None

    @bentoml.on_startup  # type: ignore[untyped-decorator]
    async def start_warm_up(self) -> None:
        """Train every runner lane's batcher in the background, as soon as it is ready."""
        self._warm_up = asyncio.create_task(self.router.warm_up())

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    async def stop_warm_up(self) -> None:
        if self._warm_up is not None:
            self._warm_up.cancel()


for _runner in runners.values():
    setattr(Theo, _runner.name, bentoml.depends(_runner))

Theo = bentoml.service(  # type: ignore[misc]
    name="theo",
    traffic={"timeout": 900, "concurrency": 32},  # concurrency: BentoCloud autoscaling
)(bentoml.asgi_app(app, path="/")(Theo))
# The page at / and /docs, from local files, answered before BentoML's own index page.
Theo.add_asgi_middleware(WebPages)  # type: ignore[attr-defined]
