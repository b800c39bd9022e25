"""The gateway's session fixtures (a real exported repository, a running app), shared with tests/server."""

from tests.server.conftest import checkpoints, client, repository, shapes

__all__ = ["checkpoints", "client", "repository", "shapes"]
