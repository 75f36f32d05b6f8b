"""Make the real ``hardware_models`` package importable under any pytest invocation.

Plain ``pytest`` (unlike ``python -m pytest``) puts ``tests/`` on sys.path but not the
repository root, so this folder, tests/hardware_models, can be picked up as a namespace
package named ``hardware_models`` that shadows the real one (the tests/conftest.py import of
neuroenergy triggers it before this file runs). Put the root first and drop the shadow.
"""
import importlib
import pathlib
import sys

_ROOT = str(pathlib.Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
_mod = sys.modules.get("hardware_models")
if _mod is not None and getattr(_mod, "__file__", None) is None:
    del sys.modules["hardware_models"]
    importlib.import_module("hardware_models")
