"""Theo's BentoML bundle: one runner service per installed model, and the API service.

Serve with ``bentoml serve service:Theo``. The logic lives in ``theo/``; this file wires
the registry (which models exist), the runner factory and the HTTP app together.
"""

from __future__ import annotations

import bentoml

from theo.http.app import create_app
from theo.log import configure_logging
from theo.serving.bundle import BundleArguments, load_bundle
from theo.serving.pool import RunnerPool
from theo.serving.runner import make_runner_service
from theo.settings import get_settings

settings = get_settings()
configure_logging(settings.log_format, settings.log_level)
# A built bento serves the models its arguments name (theo/serving/bundle.py).
bundle = load_bundle(settings.models_dir, bentoml.use_arguments(BundleArguments))
registry = bundle.registry
runners = {
    manifest.name: make_runner_service(manifest, registry.get_model_path(manifest.name))
    for manifest in registry.list_models()
}
bundle.package_models(runners)
app = create_app(settings, registry)


class Theo:
    """The entry service: validates, decodes and routes each request to its model's runner."""

    def __init__(self) -> None:
        app.state.backend = RunnerPool(
            {model: getattr(self, runner.name) for model, runner in runners.items()},
            lanes={model: list(runner.apis) for model, runner in runners.items()},
        )


for _runner in runners.values():
    setattr(Theo, _runner.name, bentoml.depends(_runner))

Theo = bentoml.service(  # type: ignore[misc]
    name="theo",
    traffic={"timeout": 900, "concurrency": 32},  # concurrency: BentoCloud autoscaling
)(bentoml.asgi_app(app, path="/")(Theo))
