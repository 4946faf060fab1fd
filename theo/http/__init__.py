"""The OpenAI-compatible HTTP app (FastAPI), independent of how models are run."""
