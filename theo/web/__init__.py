"""Theo's web page (``/``) and API reference (``/docs``): static files, no build step.

``static/`` holds plain HTML, CSS and JavaScript modules that call Theo's public API, plus a
vendored copy of Swagger UI (``static/swagger-ui/README.md``). :mod:`theo.http.web` serves
them.
"""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"

__all__ = ["STATIC_DIR"]
