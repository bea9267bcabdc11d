"""One error tree for the whole of ``federation``.

::

    FederationError                 root: anything xfed raises on purpose
    ├── ConfigError                 a user's file (instance or scenario YAML, anchor) is wrong
    │   └── ScenarioError           a scenario file is wrong (exit code 2 from ``xfed run``)
    ├── PkiError                    a certificate, key, OCSP response or time-stamp is unusable
    ├── ProtocolError               a peer sent bytes that break a protocol (HTTP, OCSP, TSP, conf)
    ├── GlobalConfError             a configuration directory failed verification
    ├── TransportError              a network peer could not be reached or hung up
    └── XRoadError                  an X-Road exchange failed with a typed X-Road error
                                    (see ``federation.securityserver.errors`` for the table)

Each error says what went wrong and where: the file and path inside it for user input,
the peer and the identifier for protocol errors. User mistakes are reported without a
traceback by the CLI.
"""

from __future__ import annotations


class FederationError(Exception):
    """Raised when xfed fails on purpose; the CLI prints ``str(error)`` and no traceback."""


class ConfigError(FederationError):
    """Raised when a user's file is invalid.

    ``file`` is the file, ``path`` the place inside it in YAML path form
    (``security_servers[1].clients[0]``), ``expected`` what was expected and ``found``
    what was there.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        path: str | None = None,
        expected: str | None = None,
        found: object = None,
    ) -> None:
        self.file = file
        self.path = path
        self.expected = expected
        self.found = found
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or ""
        if self.path:
            where = f"{where}: {self.path}" if where else self.path
        text = f"{where}: {self.message}" if where else self.message
        if self.expected is not None:
            text += f" (expected {self.expected}"
            if self.found is not None:
                text += f", found {self.found!r}"
            text += ")"
        return text


class ScenarioError(ConfigError):
    """Raised when a scenario file is invalid."""


class PkiError(FederationError):
    """Raised when a certificate, key, OCSP response or time-stamp token is unusable."""


class ProtocolError(FederationError):
    """Raised when a peer's bytes break a protocol (malformed HTTP, OCSP, TSP, directory)."""


class GlobalConfError(FederationError):
    """Raised when a global configuration directory fails download or verification.

    ``instance`` names the X-Road instance whose configuration was being processed.
    """

    def __init__(self, message: str, *, instance: str | None = None) -> None:
        self.instance = instance
        super().__init__(f"{instance}: {message}" if instance else message)


class TransportError(FederationError):
    """Raised when a network peer cannot be reached, refuses or hangs up."""


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``, with (nested) exception groups flattened away.

    trio's nurseries wrap what a task raised in an ``ExceptionGroup``; a command line that
    reports an error in one line wants the leaves: ``[exc]`` when it is no group.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    out: list[BaseException] = []
    for e in exc.exceptions:
        out.extend(leaf_errors(e))
    return out
