"""The ``theo.yaml`` manifest that describes an installed model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

MANIFEST_FILENAME = "theo.yaml"

_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ManifestError(ValueError):
    """A manifest is missing, unreadable or invalid; the message names the file and field."""


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a safe model name (letters, digits, ``.``, ``_``, ``-``)."""
    if not _MODEL_NAME_RE.fullmatch(name) or ".." in name or len(name) > 128:
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' "
            "(not a path, no '..')"
        )
    return name


ModelName = Annotated[str, AfterValidator(validate_model_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Capabilities(_Strict):
    """What the model can do."""

    architecture: str = "encoder-decoder"
    languages: list[str] = Field(default_factory=lambda: ["en"])
    word_timestamps: bool = True
    translation: bool = False
    language_detection: bool = False
    initial_prompt: bool = True
    batch_inference: bool = True


class Resources(_Strict):
    """What the model needs to run; used for scheduling and documentation."""

    memory_mb: int = Field(default=512, gt=0)
    gpu_required: bool = False
    gpu_recommended: bool = False
    load_time_seconds: float = Field(default=5.0, ge=0)


class EngineConfig(_Strict):
    """How the engine loads and runs the model, and how its runner batches requests."""

    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    beam_size: int = Field(default=5, ge=1, le=20)
    cpu_threads: int = Field(default=0, ge=0, description="0 = CTranslate2's default")
    num_workers: int = Field(default=1, ge=1, le=16)
    solo_cpu_threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="CPU only: threads of a second model instance that decodes requests "
        "at low load, when one worker's threads would leave cores idle (0 = none)",
    )
    vad_filter: bool = False
    fallback_temperatures: list[float] = Field(
        default_factory=lambda: [0.4, 0.8],
        description="hotter retries for a window whose decode looks like a failure",
    )
    batching: bool = True
    max_batch_size: int = Field(default=8, ge=1, le=256, description="requests per runner call")
    decode_batch_size: int = Field(
        default=8, ge=1, le=256, description="windows decoded together in one generate call"
    )
    encode_batch_size: int = Field(
        default=0,
        ge=0,
        le=256,
        description="CPU only: windows per encoder call within a stack (0 = all); "
        "on one thread a stacked encode costs more per window than single ones",
    )
    max_latency_ms: int = Field(default=60_000, ge=100)
    long_form_window_seconds: float = Field(
        default=20.0,
        ge=5,
        le=30,
        description="longest window a recording of more than 30 s is cut into, at its pauses "
        "(THEO_LONG_FORM_WINDOW_SECONDS, when set, overrides it for every model)",
    )
    concurrent_batches: int = Field(
        default=1,
        ge=1,
        le=16,
        description="runner batches in flight at once (on CPU, one per engine worker keeps "
        "every core busy while a finished batch's callers send their next requests)",
    )


class ModelManifest(_Strict):
    """The parsed and validated contents of ``models/<name>/theo.yaml``."""

    name: ModelName
    version: str = "1.0"
    engine: Literal["faster-whisper"] = "faster-whisper"
    type: Literal["stt"] = "stt"
    description: str = ""
    capabilities: Capabilities = Field(default_factory=Capabilities)
    resources: Resources = Field(default_factory=Resources)
    engine_config: EngineConfig = Field(default_factory=EngineConfig)

    def to_yaml(self) -> str:
        """Serialise the manifest as ``theo.yaml`` text."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _describe(error: ValidationError, path: Path) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(root)"
        problems.append(f"{field}: {item['msg']}")
    return f"{path}: invalid manifest: " + "; ".join(problems)


def parse_manifest(data: object, path: Path) -> ModelManifest:
    """Validate already-loaded manifest data; errors name ``path`` and the field."""
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: invalid manifest: expected a mapping at the top level")
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(_describe(exc, path)) from None


def load_manifest(path: Path) -> ModelManifest:
    """Read and validate a ``theo.yaml`` file (``yaml.safe_load``, never arbitrary objects)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: invalid YAML: {exc}") from None
    return parse_manifest(data, path)
