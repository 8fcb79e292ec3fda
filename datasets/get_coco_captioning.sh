#!/usr/bin/env bash
# Download the cs231n COCO captioning release (about 1 GB) into datasets/coco_captioning,
# or into $CS231N_COCO_DIR when set. Every argument is passed on to `python -m cs231n download coco`:
#   --url URL    fetch from a mirror
#   --dest DIR   install somewhere else
#   --force      replace an existing dataset
# Set PYTHON to choose the interpreter (default: python).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${repo_root}${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON:-python}" -m cs231n download coco "$@"
