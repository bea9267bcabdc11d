"""X-Road identifiers and their text forms (reference xroad.md section 1).

Text forms, as in the REST protocol headers and paths:

* member:      ``INST/CLASS/CODE``
* subsystem:   ``INST/CLASS/CODE/SUB``
* service:     ``INST/CLASS/CODE/SUB/SERVICE`` (REST services always have a subsystem)
* server:      ``INST/CLASS/CODE/SERVERCODE``

Allowed characters in every part: ``A-Z a-z 0-9 ' ( ) + , - . = ?`` (X-Road's
``strict-identifier-checks``). In REST paths each part is percent-encoded on its own.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from federation.errors import FederationError

_PART = re.compile(r"^[A-Za-z0-9'()+,\-.=?]+$")


class IdentifierError(FederationError, ValueError):
    """Raised when a text does not parse as the expected X-Road identifier."""


def _check_parts(kind: str, text: str, parts: list[str]) -> None:
    for p in parts:
        if not _PART.match(p):
            raise IdentifierError(
                f"invalid {kind} identifier {text!r}: part {p!r} must be non-empty and use only "
                "A-Z a-z 0-9 ' ( ) + , - . = ?"
            )


@dataclass(frozen=True, slots=True, order=True)
class ClientId:
    """A member (``subsystem is None``) or a subsystem."""

    instance: str
    member_class: str
    member_code: str
    subsystem: str | None = None

    @classmethod
    def parse(cls, text: str) -> ClientId:
        """Parse ``INST/CLASS/CODE[/SUB]``."""
        parts = text.strip().split("/")
        if len(parts) not in (3, 4):
            raise IdentifierError(
                f"invalid client identifier {text!r}: expected INSTANCE/CLASS/CODE[/SUBSYSTEM]"
            )
        _check_parts("client", text, parts)
        return cls(*parts)

    @property
    def is_subsystem(self) -> bool:
        return self.subsystem is not None

    @property
    def member(self) -> ClientId:
        """The member that owns this subsystem (or itself)."""
        return ClientId(self.instance, self.member_class, self.member_code)

    @property
    def object_type(self) -> str:
        return "SUBSYSTEM" if self.subsystem else "MEMBER"

    def parts(self) -> list[str]:
        out = [self.instance, self.member_class, self.member_code]
        if self.subsystem:
            out.append(self.subsystem)
        return out

    def __str__(self) -> str:
        return "/".join(self.parts())

    def to_json(self) -> dict[str, str]:
        """The ``id`` object of X-Road's JSON metaservice formats."""
        out = {
            "object_type": self.object_type,
            "xroad_instance": self.instance,
            "member_class": self.member_class,
            "member_code": self.member_code,
        }
        if self.subsystem:
            out["subsystem_code"] = self.subsystem
        return out


@dataclass(frozen=True, slots=True, order=True)
class ServiceId:
    """A REST service: a provider subsystem plus a service code."""

    client: ClientId
    code: str

    @classmethod
    def parse(cls, text: str) -> ServiceId:
        """Parse ``INST/CLASS/CODE/SUB/SERVICE``."""
        parts = text.strip().split("/")
        if len(parts) != 5:
            raise IdentifierError(
                f"invalid service identifier {text!r}: expected "
                "INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE"
            )
        _check_parts("service", text, parts)
        return cls(ClientId(*parts[:4]), parts[4])

    @property
    def instance(self) -> str:
        return self.client.instance

    def __str__(self) -> str:
        return f"{self.client}/{self.code}"

    def to_json(self) -> dict[str, str]:
        out = self.client.to_json()
        out["object_type"] = "SERVICE"
        out["service_code"] = self.code
        return out

    def rest_path(self) -> str:
        """``/r1/INST/CLASS/CODE/SUB/SERVICE`` with each part percent-encoded."""
        return "/r1/" + "/".join(
            urllib.parse.quote(p, safe="") for p in [*self.client.parts(), self.code]
        )


@dataclass(frozen=True, slots=True, order=True)
class SecurityServerId:
    """A security server: its owner member plus a server code."""

    owner: ClientId
    code: str

    @classmethod
    def parse(cls, text: str) -> SecurityServerId:
        """Parse ``INST/CLASS/CODE/SERVERCODE``."""
        parts = text.strip().split("/")
        if len(parts) != 4:
            raise IdentifierError(
                f"invalid security server identifier {text!r}: expected "
                "INSTANCE/CLASS/CODE/SERVERCODE"
            )
        _check_parts("security server", text, parts)
        return cls(ClientId(*parts[:3]), parts[3])

    @property
    def instance(self) -> str:
        return self.owner.instance

    def __str__(self) -> str:
        return f"{self.owner}/{self.code}"
