#!/usr/bin/env bash
# The test suite on a fresh machine: install with the test extras, fetch MNIST, run pytest.
# Extra arguments go to pytest (e.g. -m slow for the long tests, -x to stop early).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all,test]'
.venv/bin/neuroenergy data fetch
.venv/bin/python -m pytest -m "not slow" -q "$@"
