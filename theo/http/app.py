"""The FastAPI app: OpenAI's audio and model routes, health, and error mapping.

Request path: form fields → :func:`build_request` (validation) → the model's admission
queue → decode audio → cut windows → backend (the model's runner) → :func:`render_result`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from theo import __version__
from theo.audio import decode_audio
from theo.chunking import merge_window_results, split_into_windows
from theo.errors import (
    FileTooLargeError,
    InternalServerError,
    InvalidRequestError,
    ModelNotFoundError,
    TheoError,
)
from theo.formats import ResponseFormat
from theo.http.admission import ModelAdmission, QueueLimits
from theo.http.auth import BearerAuthMiddleware
from theo.http.backend import BackendProvider, TranscriptionBackend
from theo.http.metrics import AdmissionMetrics
from theo.http.middleware import (
    RequestContextMiddleware,
    RequestTimeoutMiddleware,
    UploadLimitMiddleware,
)
from theo.http.responses import error_response, render_result
from theo.http.validation import Granularity, TranscriptionRequest, build_request
from theo.registry import ModelRegistry
from theo.settings import Settings
from theo.transcription import SAMPLE_RATE, Task, TranscriptionJob, TranscriptionResult

logger = logging.getLogger(__name__)

WINDOWS_IN_FLIGHT_PER_REQUEST = 4

# Mirrors OpenAI's ``created`` field; Theo has no per-model creation date.
_CREATED = 0


def _validation_error(exc: RequestValidationError) -> InvalidRequestError:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = loc[0] if loc else None
    if param == "timestamp_granularities[]":
        param = "timestamp_granularities"
    if first.get("type") == "missing":
        return InvalidRequestError(f"Missing required parameter: '{param}'.", param=param)
    detail = first.get("msg", "invalid value")
    return InvalidRequestError(f"Invalid value for '{param}': {detail}.", param=param)


def create_app(
    settings: Settings, registry: ModelRegistry, get_backend: BackendProvider
) -> FastAPI:
    """Build the HTTP app; routes get their backend from the dependency ``get_backend``.

    ``get_backend`` may raise :class:`theo.errors.ServiceUnavailableError` while the
    backend is starting. Tests pass a fake, or override it in ``app.dependency_overrides``.
    """
    app = FastAPI(
        title="Theo",
        version=__version__,
        description="OpenAI-compatible speech to text",
    )
    metrics = AdmissionMetrics()
    admission = ModelAdmission(
        QueueLimits(
            max_in_flight=settings.max_in_flight_per_model,
            max_queued=settings.max_queued_per_model,
            max_queued_bytes=settings.max_queued_bytes_per_model,
            max_wait_seconds=settings.max_queue_wait_seconds,
        ),
        on_refused=metrics.count_refusal,
    )
    # A default, not an Annotated alias: the annotations here are strings that FastAPI
    # resolves in the module's globals, where this function's ``get_backend`` is not.
    backend_dependency: Any = Depends(get_backend)

    @app.exception_handler(TheoError)
    async def theo_error(_: Request, exc: TheoError) -> Response:
        return error_response(exc, retry_after=settings.retry_after_seconds)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return error_response(_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        error = TheoError(str(exc.detail))
        error.status_code = exc.status_code  # type: ignore[misc]
        error.error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"  # type: ignore[misc]
        return error_response(error)

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> Response:
        logger.exception("unexpected error", exc_info=exc)
        return error_response(InternalServerError())

    async def transcribe(
        http_request: Request,
        backend: TranscriptionBackend,
        *,
        task: Task,
        file: UploadFile,
        model: str,
        language: str | None,
        prompt: str | None,
        response_format: ResponseFormat,
        temperature: float,
        granularities: list[Granularity],
        stream: bool,
    ) -> Response:
        state = http_request.state
        state.task, state.response_format = task, response_format
        request = build_request(
            task=task,
            model=model,
            language=language,
            prompt=prompt,
            response_format=response_format,
            temperature=temperature,
            granularities=granularities,
            stream=stream,
            registry=registry,
            settings=settings,
        )
        state.model = request.model
        size = file.size or 0
        if size > settings.max_file_size_bytes:
            # The middleware's cap allows for the other form fields; this one is the file's.
            raise FileTooLargeError(settings.max_file_size_bytes)

        def report_load() -> None:
            metrics.set_load(
                request.model,
                queued=admission.queued(request.model),
                in_progress=admission.active(request.model),
            )

        # Wait for the model before any CPU is spent on the audio (503 past the queue).
        report_load()
        try:
            async with admission.admit(
                request.model, size=size, disconnected=http_request.is_disconnected
            ) as admitted:
                metrics.observe_wait(request.model, admitted.waited_seconds)
                state.queue_ms = round(admitted.waited_seconds * 1000, 1)
                report_load()
                return await run_admitted(http_request, request, backend, file)
        finally:
            report_load()

    async def run_admitted(
        http_request: Request,
        request: TranscriptionRequest,
        backend: TranscriptionBackend,
        file: UploadFile,
    ) -> Response:
        """Decode, cut and transcribe a request that holds one of its model's slots."""
        state = http_request.state
        data = await file.read()
        samples = await anyio.to_thread.run_sync(
            lambda: decode_audio(data, max_seconds=settings.max_audio_seconds)
        )
        duration = len(samples) / SAMPLE_RATE
        state.audio_seconds = round(duration, 2)
        windows = await anyio.to_thread.run_sync(
            lambda: split_into_windows(samples, vad=request.manifest.engine_config.vad_filter)
        )
        jobs = [
            TranscriptionJob.from_samples(
                window.samples,
                offset=window.offset,
                task=request.task,
                language=request.language,
                prompt=request.prompt,
                temperature=request.temperature,
                word_timestamps=request.word_timestamps,
            )
            for window in windows
        ]
        # A long file's windows go to the runner a few at a time, so they interleave
        # with other requests' windows instead of queueing ahead of all of them.
        in_flight = asyncio.Semaphore(WINDOWS_IN_FLIGHT_PER_REQUEST)

        async def run(job: TranscriptionJob) -> TranscriptionResult:
            async with in_flight:
                return await backend.transcribe(request.model, job)

        results = await asyncio.gather(*(run(job) for job in jobs))
        if failed := [r.error for r in results if r.error is not None]:
            logger.error("runner failed: %s", failed[0])
            raise InternalServerError()
        result = merge_window_results(list(results), duration)
        if not result.language:
            # No window had speech, so none was decoded: report the requested language
            # (or English) rather than an empty one in verbose_json.
            result.language = request.language or "en"
        state.batch_size = result.batch_size
        return render_result(request, result)

    @app.post("/v1/audio/transcriptions", summary="Transcribe audio into the input language")
    async def create_transcription(
        http_request: Request,
        file: Annotated[UploadFile, File(description="The audio file to transcribe.")],
        model: Annotated[str, Form()],
        language: Annotated[str | None, Form()] = None,
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[ResponseFormat, Form()] = "json",
        temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
        timestamp_granularities: Annotated[
            list[Granularity], Form(alias="timestamp_granularities[]")
        ] = [],  # noqa: B006 - FastAPI copies defaults per request
        stream: Annotated[bool, Form()] = False,
        backend: TranscriptionBackend = backend_dependency,
    ) -> Response:
        return await transcribe(
            http_request,
            backend,
            task="transcribe",
            file=file,
            model=model,
            language=language,
            prompt=prompt,
            response_format=response_format,
            temperature=temperature,
            granularities=timestamp_granularities,
            stream=stream,
        )

    @app.post("/v1/audio/translations", summary="Translate audio into English")
    async def create_translation(
        http_request: Request,
        file: Annotated[UploadFile, File(description="The audio file to translate.")],
        model: Annotated[str, Form()],
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[ResponseFormat, Form()] = "json",
        temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
        backend: TranscriptionBackend = backend_dependency,
    ) -> Response:
        return await transcribe(
            http_request,
            backend,
            task="translate",
            file=file,
            model=model,
            language=None,
            prompt=prompt,
            response_format=response_format,
            temperature=temperature,
            granularities=[],
            stream=False,
        )

    def model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": _CREATED, "owned_by": "theo"}

    @app.get("/v1/models", summary="List the installed models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(name) for name in registry.names()]}

    @app.get("/v1/models/{model_id}", summary="Describe one installed model")
    async def get_model(model_id: str) -> dict[str, Any]:
        if not registry.has_model(model_id):
            raise ModelNotFoundError(model_id, registry.names())
        return model_card(model_id)

    @app.get("/health", summary="200 once every model's runner is ready")
    async def health(backend: TranscriptionBackend = backend_dependency) -> Response:
        runners = await backend.readiness()
        ready = all(runners.values())
        body = {"status": "ok" if ready else "loading", "models": runners}
        if ready:
            return JSONResponse(body)
        return JSONResponse(
            body, status_code=503, headers={"Retry-After": str(settings.retry_after_seconds)}
        )

    # Outermost last: request context → auth → timeout → upload cap → routes.
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_file_size_bytes)
    app.add_middleware(RequestTimeoutMiddleware, timeout_seconds=settings.request_timeout_seconds)
    api_key = settings.api_key.get_secret_value() if settings.api_key else ""
    if api_key:
        app.add_middleware(BearerAuthMiddleware, api_key=api_key)
    app.add_middleware(RequestContextMiddleware)
    return app
