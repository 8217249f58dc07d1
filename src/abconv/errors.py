"""The one project exception for bad input at the edges (HTTP, files, CLI).

Raised with a stable machine-readable ``code`` and a human message; the web
layer renders it as ``{"error": {"code", "message"}}`` with ``status``, the
CLI prints the message and exits 1.
"""

from __future__ import annotations


class AbconvError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        details: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details  # one line per problem, e.g. of a batch
        self.headers = headers or {}  # HTTP headers of the reply, e.g. Retry-After
