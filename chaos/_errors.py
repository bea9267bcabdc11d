"""The exception tree of the ``chaos`` package.

::

    ChaosError
    +-- ApiError          an HTTP API request is refused (carries the HTTP status)
    +-- ProxyStartError   a proxy cannot bind its listen address
    +-- FaultError        the fault catalogue's HTTP call to a proxy server failed
"""

from __future__ import annotations


class ChaosError(Exception):
    """Raised when anything in the ``chaos`` package fails; the root of its exceptions."""


class ApiError(ChaosError):
    """Raised when an API request is refused; ``status`` is the HTTP status to answer with.

    ``message`` is the text of the ``{"error": ..., "status": ...}`` body, worded like
    Toxiproxy's own messages where Toxiproxy has one.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ProxyStartError(ChaosError):
    """Raised when a proxy cannot start listening (bad address, port taken, resolve error).

    The text is Go's: ``listen tcp 127.0.0.1:3310: bind: address already in use`` when the
    bind fails, ``listen tcp: lookup x: no such host`` (no address: there is none yet) when
    ``listen`` is malformed or does not resolve (``bound=False``).
    """

    def __init__(self, listen: str, reason: str, *, bound: bool = True) -> None:
        super().__init__(f"listen tcp {listen}: {reason}" if bound else f"listen tcp: {reason}")
        self.listen = listen
        self.reason = reason


class FaultError(ChaosError):
    """Raised when the fault catalogue's request to a Toxiproxy-compatible server fails.

    ``status`` is the HTTP status (0 when no response came back) and ``body`` the raw reply.
    """

    def __init__(self, message: str, *, status: int = 0, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body
