#!/usr/bin/env bash
# The whole test suite: set up (test extras), lint, type-check, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh test
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check src tests bench scripts
echo "== ruff format"; ruff format --check src tests bench scripts
echo "== mypy"; mypy
echo "== pytest"; python -m pytest "$@"
