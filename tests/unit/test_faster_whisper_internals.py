"""theo/engine/faster_whisper_internals.py: each faster-whisper internal the engine uses holds.

These fail on a faster-whisper (or CTranslate2) upgrade that moves or changes one of them,
before a deployment does. None loads a Whisper model: methods run on a bare ``WhisperModel``
given only the attributes they read, with fake tokenizers (Silero VAD, tiny, runs for real).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import tomllib
import zlib
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ctranslate2
import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens
from faster_whisper.vad import VadOptions, get_speech_timestamps

from theo.audio import decode_audio
from theo.engine import faster_whisper_internals as fw
from theo.engine.policy import PROMPT_TOKENS_MAX

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "theo" / "engine"
TIMESTAMP_BEGIN = 1000  # the fake tokenizer's first timestamp token, <|0.00|>


def fake_tokenizer() -> Any:
    return SimpleNamespace(
        timestamp_begin=TIMESTAMP_BEGIN,
        eot=999,
        sot_prev=1,
        sot_sequence=[2, 3, 4],
        non_speech_tokens=(50, 30),
        transcribe=10,
        translate=11,
        sot=12,
        sot_lm=13,
        no_speech=14,
    )


def bare_model() -> Any:
    """A WhisperModel without weights: the constants its __init__ sets for every model."""
    model = object.__new__(WhisperModel)
    model.feature_extractor = FeatureExtractor()
    model.time_precision = 0.02
    model.max_length = 448
    model.input_stride = 2
    model.frames_per_second = 100
    return model


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_installed_faster_whisper_is_the_pinned_one() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = [d for d in pyproject["project"]["dependencies"] if d.startswith("faster-whisper")]
    assert pins == [f"faster-whisper=={fw.FASTER_WHISPER_VERSION}"]
    assert version("faster-whisper") == fw.FASTER_WHISPER_VERSION


def test_whisper_model_sets_the_attributes_the_seam_reads() -> None:
    source = inspect.getsource(WhisperModel.__init__)
    assert "self.model = ctranslate2.models.Whisper(" in source
    assert "self.hf_tokenizer = tokenizers.Tokenizer" in source
    assert "self.feature_extractor = FeatureExtractor(" in source
    assert "self.time_precision = 0.02" in source
    assert "self.max_length = 448" in source
    assert "self.input_stride = 2" in source  # _split_segments_by_timestamps' frames per token
    assert (
        "self.frames_per_second = (\n"
        "            self.feature_extractor.sampling_rate // self.feature_extractor.hop_length"
    ) in source
    # bare_model() copies these constants
    assert bare_model().frames_per_second == 16_000 // FeatureExtractor().hop_length


def test_the_ctranslate2_model_decodes_aligns_and_detects_in_batches() -> None:
    whisper = ctranslate2.models.Whisper
    for name in ("is_multilingual", "device", "encode", "detect_language", "align"):
        assert hasattr(whisper, name), name
    signature = (whisper.generate.__doc__ or "").splitlines()[0]
    for keyword in (
        "max_length",
        "return_scores",
        "return_no_speech_prob",
        "suppress_blank",
        "suppress_tokens",
        "max_initial_timestamp_index",
        "sampling_temperature",
        "beam_size",
        "num_hypotheses",
        "sampling_topk",
    ):  # what passes.py's generate call passes
        assert f" {keyword}:" in signature, keyword
    # one start sequence per call, one frame count per row: passes.py aligns per tokenizer
    align = (whisper.align.__doc__ or "").splitlines()[0]
    assert "start_sequence: list[int]" in align
    assert "num_frames: Union[int, list[int]]" in align
    detect = (whisper.detect_language.__doc__ or "").splitlines()[0]
    assert detect.endswith("-> list[list[tuple[str, float]]]")  # ("<|en|>", p), best first


def test_whisper_model_encode_takes_a_feature_array() -> None:
    assert parameters(WhisperModel.encode) == ["self", "features"]


def test_the_feature_extractor_gives_one_frame_more_than_the_audio_has() -> None:
    model = bare_model()
    assert fw.time_per_frame(model) == 0.01
    features = fw.log_mel(model, np.zeros(16_000, dtype=np.float32))
    assert features.shape == (80, 101)  # 100 frames of content, as transcribe counts them


def test_a_window_is_padded_or_cut_to_one_encoder_input() -> None:
    assert "length" in parameters(pad_or_trim)
    short = np.ones((80, 10), dtype=np.float32)
    padded = fw.pad_window(short)
    assert padded.shape == (80, fw.N_FRAMES) == (80, 3000)
    assert padded[:, :10].all() and not padded[:, 10:].any()
    long = np.arange(80 * 3500, dtype=np.float32).reshape(80, 3500)
    np.testing.assert_array_equal(fw.pad_window(long), long[:, :3000])
    assert fw.pad_window(short, 1500).shape == (80, 1500)


def test_the_tokenizer_is_built_from_the_hf_tokenizer_a_task_and_a_language() -> None:
    assert parameters(Tokenizer.__init__) == [
        "self",
        "tokenizer",
        "multilingual",
        "task",
        "language",
    ]
    for name in ("encode", "decode", "eot", "timestamp_begin", "sot_sequence", "sot_prev"):
        assert hasattr(Tokenizer, name), name


def test_the_prompt_is_previous_text_then_the_start_sequence() -> None:
    assert parameters(WhisperModel.get_prompt)[:4] == [
        "self",
        "tokenizer",
        "previous_tokens",
        "without_timestamps",
    ]
    model, tokenizer = bare_model(), fake_tokenizer()
    assert fw.prompt(model, tokenizer, []) == [2, 3, 4]
    assert fw.prompt(model, tokenizer, [7, 8]) == [1, 7, 8, 2, 3, 4]
    # so prompts with as many previous tokens line up; longer ones are cut like Theo's
    long = list(range(100, 400))
    assert fw.prompt(model, tokenizer, long) == [1, *long[-PROMPT_TOKENS_MAX:], 2, 3, 4]
    assert fw.max_length(model) // 2 - 1 == PROMPT_TOKENS_MAX


def test_a_text_only_prompt_ends_with_no_timestamps() -> None:
    model, tokenizer = bare_model(), fake_tokenizer()
    tokenizer.no_timestamps = 5
    assert fw.prompt(model, tokenizer, [7], without_timestamps=True) == [1, 7, 2, 3, 4, 5]
    # as long as a prompt with timestamps and as many previous tokens: they never stack
    assert len(fw.prompt(model, tokenizer, [7])) == 5


def test_speech_spans_are_silero_vads_unpadded() -> None:
    assert parameters(get_speech_timestamps)[:2] == ["audio", "vad_options"]
    assert {"min_silence_duration_ms", "speech_pad_ms"} <= set(vars(VadOptions()))
    assert fw.speech_spans(np.zeros(32_000, dtype=np.float32), 250) == []
    jfk = decode_audio((ROOT / "tests" / "fixtures" / "jfk.flac").read_bytes())
    silence = np.zeros(16_000, dtype=np.float32)
    spans = fw.speech_spans(np.concatenate([silence, jfk, silence]), 250)
    assert len(spans) >= 2  # JFK pauses between "fellow Americans" and "ask not"
    assert spans[0][0] >= 16_000 and spans[-1][1] <= 16_000 + len(jfk)
    assert all(a < b <= c for (a, b), (c, _) in itertools.pairwise(spans))


def test_the_suppressed_tokens_are_non_speech_and_special_tokens() -> None:
    assert parameters(get_suppressed_tokens) == ["tokenizer", "suppress_tokens"]
    assert fw.suppressed_tokens(fake_tokenizer()) == (1, 10, 11, 12, 13, 14, 30, 50)


def test_the_compression_ratio_is_zlibs() -> None:
    text = "one, two, two, two, two, two, two, two"
    raw = text.encode("utf-8")
    assert fw.compression_ratio(text) == len(raw) / len(zlib.compress(raw))


def test_the_segment_splitter_takes_the_names_the_seam_passes() -> None:
    assert parameters(WhisperModel._split_segments_by_timestamps) == [
        "self",
        "tokenizer",
        "tokens",
        "time_offset",
        "segment_size",
        "segment_duration",
        "seek",
    ]


def test_a_decode_ending_on_a_lone_timestamp_consumes_the_whole_pass() -> None:
    t = TIMESTAMP_BEGIN
    tokens = [t, 5, 6, t + 50, t + 50, 7, 8, t + 100]
    segments, consumed = fw.split_segments(bare_model(), fake_tokenizer(), tokens, 30.0, 2500)
    assert consumed == 2500
    assert [(s["start"], s["end"], s["tokens"]) for s in segments] == [
        (30.0, 31.0, [t, 5, 6, t + 50]),
        (31.0, 32.0, [t + 50, 7, 8, t + 100]),
    ]


def test_an_unfinished_segment_is_left_for_the_next_pass() -> None:
    t = TIMESTAMP_BEGIN
    tokens = [t, 5, 6, t + 50, t + 50, 7, 8]
    segments, consumed = fw.split_segments(bare_model(), fake_tokenizer(), tokens, 0.0, 2500)
    assert consumed == 100  # mel frames up to the last closed segment's end (1.0 s)
    assert [(s["start"], s["end"]) for s in segments] == [(0.0, 1.0)]


def test_a_decode_without_timestamp_pairs_is_one_segment_over_the_pass() -> None:
    segments, consumed = fw.split_segments(
        bare_model(), fake_tokenizer(), [TIMESTAMP_BEGIN, 5, 6], 4.0, 700
    )
    assert consumed == 700
    assert [(s["start"], s["end"]) for s in segments] == [(4.0, pytest.approx(11.0))]


def test_the_word_aligner_takes_rows_of_segments_and_their_seek_in_frames() -> None:
    assert parameters(WhisperModel.add_word_timestamps) == [
        "self",
        "segments",
        "tokenizer",
        "encoder_output",
        "num_frames",
        "prepend_punctuations",
        "append_punctuations",
        "last_speech_timestamp",
    ]
    source = inspect.getsource(WhisperModel.add_word_timestamps)
    assert 'time_offset = segment[0]["seek"] / self.frames_per_second' in source
    assert 'segments[segment_idx][subsegment_idx]["words"] = words' in source
    assert (
        "self.find_alignment(\n            tokenizer, text_tokens, encoder_output, num_frames"
        in (source)
    )
    assert "self.model.align(" in inspect.getsource(WhisperModel.find_alignment)


# -- The seam is the only way in ----------------------------------------------------------

INTERNAL_ATTRIBUTES = {
    "_split_segments_by_timestamps",
    "get_prompt",
    "add_word_timestamps",
    "hf_tokenizer",
    "feature_extractor",
    "time_per_frame",
    "max_length",
    "time_precision",
    "frames_per_second",
}


def _engine_modules() -> list[Path]:
    return [p for p in sorted(ENGINE.glob("*.py")) if p.name != "faster_whisper_internals.py"]


@pytest.mark.parametrize("path", _engine_modules(), ids=lambda p: p.name)
def test_no_other_engine_module_reaches_into_faster_whisper(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    seam = {  # what the module calls the seam: its own functions may have these names
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "theo.engine"
        for alias in node.names
        if alias.name == "faster_whisper_internals"
    }
    for node in ast.walk(tree):
        on_seam = isinstance(node, ast.Attribute) and ast.unparse(node.value) in seam
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("faster_whisper") for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("faster_whisper"):
            # the public entry point only
            assert node.module == "faster_whisper", node.module
            assert [a.name for a in node.names] == ["WhisperModel"]
        elif isinstance(node, ast.Attribute) and not on_seam:
            assert node.attr not in INTERNAL_ATTRIBUTES, f"{path.name}:{node.lineno} .{node.attr}"
            # WhisperModel.model (the CTranslate2 model) only through the seam
            if node.attr == "model":
                assert isinstance(node.value, ast.Name) and node.value.id == "self", (
                    f"{path.name}:{node.lineno}"
                )


@pytest.mark.parametrize("name", ["policy.py", "instances.py"])
def test_the_policy_and_the_instance_choice_are_pure_logic(name: str) -> None:
    tree = ast.parse((ENGINE / name).read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in {"faster_whisper", "ctranslate2"}}
    assert not {m for m in imported if m.startswith("theo")}
