"""lmms-eval integration: the `tinyllava_bench` model (adapter.py), registered by the entry point in manifest.py.

Nothing here is imported by the rest of the package: lmms-eval is an optional extra (`pip install -e ".[lmms]"`).
"""
