"""Theo: an OpenAI-compatible speech-to-text server for Whisper models."""

# The one place the version lives: pyproject.toml reads it (tool.setuptools.dynamic).
__version__ = "0.1.0"
