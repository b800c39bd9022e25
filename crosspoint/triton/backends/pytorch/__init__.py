"""Shim for Triton's `pytorch` backend; only `model.py` is copied into the backend directory."""
