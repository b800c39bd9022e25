"""Batch inference straight to Triton over gRPC: `crosspoint batch embed|classify DIR|GLOB --out ...`.

Files are preprocessed locally with `crosspoint.geometry` (the gateway's preprocessing, in worker
processes), sent in batches with bounded in-flight requests, and written to a resumable
parquet/npz store (`store.py` explains the part-file design).
"""
