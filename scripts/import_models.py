"""Import model folders into the BentoML model store, so a bento can package their weights.

    python scripts/import_models.py                      # every model in $THEO_MODELS_DIR
    python scripts/import_models.py faster-whisper-base  # some of them
    python scripts/import_models.py --device cuda --compute-type float16   # GPU manifests

The store is $BENTOML_HOME/models (default ~/bentoml/models). Importing an unchanged folder
again is a no-op. Then: bentoml build --name theo-bundled --arg model_source=store
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from theo.errors import ModelNotFoundError
from theo.manifest import ManifestError
from theo.registry import ModelRegistry
from theo.serving.store import StoreError, import_model
from theo.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to import (default: all installed)")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: $THEO_MODELS_DIR")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], help="override engine_config")
    parser.add_argument("--compute-type", help="override engine_config.compute_type")
    args = parser.parse_args(argv)

    registry = ModelRegistry(args.models_dir or get_settings().models_dir)
    names = args.names or registry.names()
    if not names:
        print(f"no models installed in {registry.models_dir} (run `make models`)", file=sys.stderr)
        return 1
    overrides: dict[str, Any] = {}
    if args.device:
        overrides["device"] = args.device
    if args.compute_type:
        overrides["compute_type"] = args.compute_type
    for name in names:
        try:
            stored = import_model(registry.get_model_path(name), overrides)
        except (StoreError, ManifestError, ModelNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: {stored.tag} ({'imported' if stored.created else 'already in the store'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
