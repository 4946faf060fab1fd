"""The faster-whisper engine: decodes batches of audio windows; knows nothing about HTTP."""

from theo.engine.engine import FasterWhisperEngine

__all__ = ["FasterWhisperEngine"]
