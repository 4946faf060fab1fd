#!/usr/bin/env bash
# Usage: scripts/containerize.sh BENTO_TAG IMAGE_TAG [bentoml containerize options...]
#
# `bentoml containerize`, run from a folder that holds its temporary build context:
# bentoml 1.4.36+ refuses a bento's dockerfile_template outside the working directory
# (bentoml/BentoML#5566), and containerize copies the bento to a temporary folder first.
set -euo pipefail
bento=$1 image=$2
shift 2
bentoml=${BENTOML:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/bentoml}
workdir=$(mktemp -d "${TMPDIR:-/tmp}/theo-containerize.XXXXXX")
trap 'rm -rf "$workdir"' EXIT
cd "$workdir"
TMPDIR=$workdir "$bentoml" containerize "$bento" --image-tag "$image" "$@"
