"""The FastAPI app: OpenAI's audio and model routes, health, and error mapping.

Request path: form fields → :func:`build_request` (validation) → the model's admission
queue → decode audio → cut windows → backend (the model's runner) → :func:`render_result`,
or with ``stream=true`` an event per window (:mod:`theo.http.streaming`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from theo import __version__
from theo.chunking import merge_window_results
from theo.errors import (
    FileTooLargeError,
    InternalServerError,
    InvalidRequestError,
    ModelNotFoundError,
    TheoError,
)
from theo.http.admission import ModelAdmission, QueueLimits
from theo.http.auth import BearerAuthMiddleware
from theo.http.backend import BackendProvider, TranscriptionBackend
from theo.http.decoding import DecodedAudioBudget, DecodeReport
from theo.http.metrics import AdmissionMetrics
from theo.http.middleware import (
    RequestContextMiddleware,
    RequestTimeoutMiddleware,
    UploadLimitMiddleware,
)
from theo.http.responses import error_response, render_result
from theo.http.streaming import EventStreamResponse, transcript_events
from theo.http.validation import (
    Granularity,
    RequestedFormat,
    TranscriptionRequest,
    build_request,
    parse_chunking_strategy,
)
from theo.long_form import transcribe_in_order
from theo.realtime import add_realtime_routes
from theo.registry import ModelRegistry
from theo.settings import Settings
from theo.transcription import Task, TranscriptionJob, TranscriptionResult

logger = logging.getLogger(__name__)

WINDOWS_IN_FLIGHT_PER_REQUEST = 4

# Mirrors OpenAI's ``created`` field; Theo has no per-model creation date.
_CREATED = 0


def _validation_error(exc: RequestValidationError) -> InvalidRequestError:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = loc[0] if loc else None
    if param and param.endswith("[]"):  # timestamp_granularities[], include[], ...
        param = param[:-2]
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
    decoding = DecodedAudioBudget(
        settings.max_decoded_audio_bytes,
        max_wait_seconds=settings.max_queue_wait_seconds,
        on_change=metrics.set_decoded_audio,
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
        response_format: RequestedFormat,
        temperature: float,
        granularities: list[Granularity],
        stream: bool,
        chunking_strategy: str | None = None,
        include: list[str] | None = None,
        known_speaker_names: list[str] | None = None,
        known_speaker_references: list[str] | None = None,
    ) -> Response:
        state = http_request.state
        state.task, state.response_format = task, response_format
        chunking = None
        if task == "transcribe":
            # The SDKs send an object as chunking_strategy[type]=..., one field per key.
            form = await http_request.form()
            nested = {
                key[len("chunking_strategy[") : -1]: value
                for key, value in form.multi_items()
                if key.startswith("chunking_strategy[") and key.endswith("]")
            }
            chunking = parse_chunking_strategy(chunking_strategy, nested)
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
            chunking=chunking,
            include=include or [],
            known_speaker_names=known_speaker_names or [],
            known_speaker_references=known_speaker_references or [],
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

        async with AsyncExitStack() as held:
            held.callback(report_load)
            report_load()
            # Wait for the model before any CPU is spent on the audio (503 past the queue).
            admitted = await held.enter_async_context(
                admission.admit(request.model, size=size, disconnected=http_request.is_disconnected)
            )
            metrics.observe_wait(request.model, admitted.waited_seconds)
            state.queue_ms = round(admitted.waited_seconds * 1000, 1)
            report_load()
            response = await run_admitted(http_request, request, backend, file, held)
            if isinstance(response, EventStreamResponse):
                # The body runs after this returns: the stream holds the slot until it ends.
                response.hold(held.pop_all())
            return response

    async def run_admitted(
        http_request: Request,
        request: TranscriptionRequest,
        backend: TranscriptionBackend,
        file: UploadFile,
        held: AsyncExitStack,
    ) -> Response:
        """Decode, cut and transcribe a request that holds one of its model's slots.

        What the work holds goes on ``held``. A stream starts once the first window is
        decoded, so an error up to then is an ordinary error response.
        """
        state = http_request.state
        # Held for the whole request: decoding is bounded per request, not per process.
        await held.enter_async_context(decoding.reserve())
        report = DecodeReport()
        windows = decoding.windows(
            file.file,
            max_seconds=settings.max_audio_seconds,
            vad=request.manifest.engine_config.vad_filter,
            chunking=request.chunking,
            report=report,
            long_window_seconds=settings.long_window_seconds(request.manifest.engine_config),
        )

        async def jobs() -> AsyncIterator[TranscriptionJob]:
            async for window in windows:
                yield TranscriptionJob.from_pcm16(
                    window.samples,
                    offset=window.offset,
                    task=request.task,
                    language=request.language,
                    prompt=request.prompt,
                    temperature=request.temperature,
                    word_timestamps=request.word_timestamps,
                )
            state.audio_seconds = round(report.audio_seconds, 2)
            metrics.observe_decode(request.model, report.seconds)

        results = transcribe_in_order(
            backend,
            request.model,
            jobs(),
            in_flight=WINDOWS_IN_FLIGHT_PER_REQUEST,
            first_alone=request.stream,
            encoder_seconds=settings.long_form_encoder_seconds or None,
        )
        held.push_async_callback(results.aclose)

        def finish(window_results: list[TranscriptionResult]) -> TranscriptionResult:
            result = merge_window_results(window_results, report.audio_seconds)
            if not result.language:
                # No window had speech, so none was decoded: report the requested language
                # (or English) rather than an empty one in verbose_json.
                result.language = request.language or "en"
            state.batch_size = result.batch_size
            return result

        if not request.stream:
            return render_result(request, finish([result async for result in results]))
        first = await anext(results, None)
        events = transcript_events(
            _after(first, results), finish, usage=request.task == "transcribe"
        )
        return EventStreamResponse(events)

    @app.post("/v1/audio/transcriptions", summary="Transcribe audio into the input language")
    async def create_transcription(
        http_request: Request,
        file: Annotated[UploadFile, File(description="The audio file to transcribe.")],
        model: Annotated[str, Form()],
        language: Annotated[str | None, Form()] = None,
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[RequestedFormat, Form()] = "json",
        temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
        timestamp_granularities: Annotated[
            list[Granularity], Form(alias="timestamp_granularities[]")
        ] = [],  # noqa: B006 - FastAPI copies defaults per request
        stream: Annotated[bool, Form()] = False,
        chunking_strategy: Annotated[
            str | None,
            Form(
                description='"auto", or a server_vad object as JSON (SDKs send its fields '
                "as chunking_strategy[type], chunking_strategy[threshold], ...)."
            ),
        ] = None,
        include: Annotated[list[str], Form(alias="include[]")] = [],  # noqa: B006
        known_speaker_names: Annotated[list[str], Form(alias="known_speaker_names[]")] = [],  # noqa: B006
        known_speaker_references: Annotated[
            list[str], Form(alias="known_speaker_references[]")
        ] = [],  # noqa: B006
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
            chunking_strategy=chunking_strategy,
            include=include,
            known_speaker_names=known_speaker_names,
            known_speaker_references=known_speaker_references,
        )

    @app.post("/v1/audio/translations", summary="Translate audio into English")
    async def create_translation(
        http_request: Request,
        file: Annotated[UploadFile, File(description="The audio file to translate.")],
        model: Annotated[str, Form()],
        prompt: Annotated[str | None, Form()] = None,
        response_format: Annotated[RequestedFormat, Form()] = "json",
        temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
        stream: Annotated[
            bool, Form(description="Theo's extension: OpenAI's translations do not stream.")
        ] = False,
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
            stream=stream,
        )

    def model_card(name: str) -> dict[str, Any]:
        capabilities = registry.get_manifest(name).capabilities
        return {
            "id": name,
            "object": "model",
            "created": _CREATED,
            "owned_by": "theo",
            # Theo's extension, so a client can offer the right choices (the web page does);
            # OpenAI's SDKs keep unknown fields (Model.model_extra).
            "capabilities": capabilities.model_dump(
                include={"languages", "translation", "language_detection", "word_timestamps"}
            ),
        }

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

    add_realtime_routes(app, settings, registry, get_backend)  # WebSocket /v1/realtime

    # Outermost last: request context → auth → timeout → upload cap → routes.
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_file_size_bytes)
    app.add_middleware(RequestTimeoutMiddleware, timeout_seconds=settings.request_timeout_seconds)
    api_key = settings.api_key.get_secret_value() if settings.api_key else ""
    if api_key:
        app.add_middleware(BearerAuthMiddleware, api_key=api_key)
    app.add_middleware(RequestContextMiddleware)
    return app


async def _after(
    first: TranscriptionResult | None, rest: AsyncIterator[TranscriptionResult]
) -> AsyncIterator[TranscriptionResult]:
    """``first`` (already taken from the results, None if there were none), then ``rest``."""
    if first is None:
        return
    yield first
    async for result in rest:
        yield result
