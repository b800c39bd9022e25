"""The FastAPI gateway: uploads in, embeddings, classes and part labels out (no torch here)."""
