"""Clients of the gateway and of Triton: the Python SDK, the CLI commands and the batch gRPC client."""
