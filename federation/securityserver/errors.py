"""The one table of X-Road error types a security server returns (reference xroad.md section 2).

Every failure of an exchange is an :class:`XRoadError` carrying one :class:`Fault` of
:data:`ERROR_TABLE`. A fault names where X-Road reports it: ``Client.*`` (the consumer
information system sent a bad request, HTTP 400), ``Server.ClientProxy.*`` (the consumer
security server failed, HTTP 500) or ``Server.ServerProxy.*`` (the provider security server
failed, HTTP 500, passed through unchanged by the consumer security server).

Names are the pre-7.8 ones (``Server.ClientProxy.OutdatedGlobalConf``) as X-Road up to 7.7
sends them; each row also has the 7.8 lower-case equivalent
(``server.clientproxy.global_conf_outdated``, code: ``ErrorCodes.java`` at tag 7.8.0).
:meth:`Fault.from_type` accepts both. ``docs/errors.md`` is this table in prose.

Rendering (code: ``ClientRestMessageHandler.sendErrorResponse``): status 500 when the type
starts with ``Server.``, else 400; header ``X-Road-Error: <type>``; body JSON
``{"type","message","detail"}`` or, when ``Accept`` names ``text/xml``, ``application/xml``
or ``text/*``, ``<error><type/><message/><detail/></error>``. ``detail`` is a UUID that the
security server also logs, so an operator can find the failure in the logs.
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from xml.sax.saxutils import escape

from federation.errors import FederationError

__all__ = [
    "ERROR_TABLE",
    "ErrorRendering",
    "Fault",
    "XRoadError",
    "render_error",
]


class Fault(enum.Enum):
    """One row of the error table: ``(pre-7.8 type, 7.8 type, when it happens)``.

    The HTTP status follows from the type: 400 for ``Client.*``, 500 for ``Server.*``.
    """

    # --- the consumer's information system sent something wrong -------------------------
    BAD_REQUEST = (
        "Client.BadRequest",
        "client.bad_request",
        "malformed REST request: path not /r1/INST/CLASS/CODE/SUB/SERVICE, bad percent-encoding, "
        "missing or malformed X-Road-Client / X-Road-Security-Server / X-Road-Represented-Party",
    )
    # --- consumer security server (client proxy) -----------------------------------------
    OUTDATED_GLOBALCONF = (
        "Server.ClientProxy.OutdatedGlobalConf",
        "server.clientproxy.global_conf_outdated",
        "the consumer security server's own instance configuration has expired",
    )
    CLIENT_NOT_REGISTERED = (
        "Server.ClientProxy.UnknownMember",
        "server.clientproxy.unknown_member",
        "X-Road-Client is not a registered client of this security server",
    )
    UNKNOWN_MEMBER = (
        "Server.ClientProxy.UnknownMember",
        "server.clientproxy.unknown_member",
        "the provider is not hosted by any security server in its instance's shared parameters "
        "(unknown member, unknown instance, or that instance's configuration expired)",
    )
    INVALID_SECURITY_SERVER = (
        "Server.ClientProxy.InvalidSecurityServer",
        "server.clientproxy.invalid_security_server",
        "X-Road-Security-Server names a server that is unknown or does not host the provider",
    )
    NETWORK_ERROR = (
        "Server.ClientProxy.NetworkError",
        "server.clientproxy.network_error",
        "no provider security server could be reached (connect, TLS or read failed)",
    )
    SSL_AUTH_FAILED = (
        "Server.ClientProxy.SslAuthenticationFailed",
        "server.clientproxy.ssl_authentication_failed",
        "the provider security server's TLS certificate is not trusted: chain not to an approved "
        "CA of its instance, no fresh GOOD OCSP response, or hash not registered for a server "
        "hosting the provider",
    )
    CERT_VALIDATION = (
        "Server.ClientProxy.CertValidation",
        "server.clientproxy.cert_validation",
        "a certificate on the consumer side is unusable: own signing/auth certificate revoked, "
        "unknown to the responder, or without a fresh OCSP response (cannot sign)",
    )
    INVALID_SIGNATURE = (
        "Server.ClientProxy.InvalidSignatureValue",
        "server.clientproxy.invalid_signature_value",
        "the response signature does not verify (signature, signed data, body digest or signer)",
    )
    INCONSISTENT_RESPONSE = (
        "Server.ClientProxy.InconsistentResponse",
        "server.clientproxy.inconsistent_response",
        "the response's X-Road-Id, client, service, request id or X-Road-Request-Hash does not "
        "match the request",
    )
    INVALID_MESSAGE = (
        "Server.ClientProxy.InvalidMessage",
        "server.clientproxy.invalid_message",
        "the provider security server's reply is not a well-formed signed response envelope",
    )
    TIMESTAMPING_FAILED = (
        "Server.ClientProxy.TimestampingFailed",
        "server.clientproxy.timestamping_failed",
        "time-stamping has failed for longer than the acceptable failure period; the message "
        "log refuses new records",
    )
    INTERNAL_ERROR = (
        "Server.ClientProxy.InternalError",
        "server.clientproxy.internal_error",
        "an unexpected failure inside the consumer security server",
    )
    # --- provider security server (server proxy) -----------------------------------------
    PROVIDER_OUTDATED_GLOBALCONF = (
        "Server.ServerProxy.OutdatedGlobalConf",
        "server.serverproxy.global_conf_outdated",
        "the provider security server's own instance configuration has expired",
    )
    PROVIDER_UNKNOWN_MEMBER = (
        "Server.ServerProxy.UnknownMember",
        "server.serverproxy.unknown_member",
        "the client is not in its instance's shared parameters, or the provider is not a "
        "registered client of the provider security server",
    )
    PROVIDER_INVALID_SECURITY_SERVER = (
        "Server.ServerProxy.InvalidSecurityServer",
        "server.serverproxy.invalid_security_server",
        "the request was pinned to another security server than the one that received it",
    )
    PROVIDER_SSL_AUTH_FAILED = (
        "Server.ServerProxy.SslAuthenticationFailed",
        "server.serverproxy.ssl_authentication_failed",
        "the consumer security server's TLS certificate is not trusted (chain, OCSP, or hash "
        "not registered for a server hosting the client)",
    )
    PROVIDER_CERT_VALIDATION = (
        "Server.ServerProxy.CertValidation",
        "server.serverproxy.cert_validation",
        "a certificate is unusable at the provider: the client's signing certificate revoked, "
        "unknown or without a fresh OCSP response, or the provider's own cannot sign",
    )
    UNKNOWN_SERVICE = (
        "Server.ServerProxy.UnknownService",
        "server.serverproxy.unknown_service",
        "the provider security server has no such service for the provider",
    )
    ACCESS_DENIED = (
        "Server.ServerProxy.AccessDenied",
        "server.serverproxy.access_denied",
        "the client has no access right to the service",
    )
    PROVIDER_INVALID_MESSAGE = (
        "Server.ServerProxy.InvalidMessage",
        "server.serverproxy.invalid_message",
        "the consumer security server's request is not a well-formed signed request envelope",
    )
    PROVIDER_INVALID_SIGNATURE = (
        "Server.ServerProxy.InvalidSignatureValue",
        "server.serverproxy.invalid_signature_value",
        "the request signature does not verify (signature, signed data, body digest or signer)",
    )
    PROVIDER_NETWORK_ERROR = (
        "Server.ServerProxy.NetworkError",
        "server.serverproxy.network_error",
        "the provider information system could not be reached or did not answer in time",
    )
    PROVIDER_TIMESTAMPING_FAILED = (
        "Server.ServerProxy.TimestampingFailed",
        "server.serverproxy.timestamping_failed",
        "the provider security server's message log refuses records (time-stamping failed for "
        "longer than the failure period)",
    )
    PROVIDER_INTERNAL_ERROR = (
        "Server.ServerProxy.InternalError",
        "server.serverproxy.internal_error",
        "an unexpected failure inside the provider security server",
    )

    def __init__(self, legacy: str, modern: str, when: str) -> None:
        self.legacy = legacy
        self.modern = modern
        self.when = when

    @property
    def type(self) -> str:
        """The X-Road error type as sent (pre-7.8 form)."""
        return self.legacy

    @property
    def status(self) -> int:
        """HTTP status: 400 for ``Client.*``, 500 for ``Server.*``."""
        return status_for_type(self.legacy)

    @classmethod
    def from_type(cls, text: str) -> Fault | None:
        """The first row whose pre-7.8 or 7.8 type is ``text`` (case-insensitive), else None."""
        low = text.strip().lower()
        for fault in cls:
            if fault.legacy.lower() == low or fault.modern == low:
                return fault
        return None


ERROR_TABLE: tuple[Fault, ...] = tuple(Fault)
"""Every row, in the order of ``docs/errors.md``."""


def status_for_type(error_type: str) -> int:
    """500 when the type starts with ``Server.`` (any case), otherwise 400 (X-Road's rule)."""
    return 500 if error_type.lower().startswith("server.") else 400


class XRoadError(FederationError):
    """Raised when an X-Road exchange fails with a typed X-Road error.

    ``fault`` is the table row (None for a type received from a peer that is not in our
    table); ``type`` the X-Road type string sent on the wire; ``message`` the human text;
    ``detail`` a UUID identifying this occurrence (generated when not given).
    """

    def __init__(
        self,
        fault: Fault,
        message: str,
        *,
        detail: str | None = None,
        xroad_id: str | None = None,
    ) -> None:
        self.fault: Fault | None = fault
        self.type = fault.type
        self.message = message
        self.detail = detail or str(uuid.uuid4())
        self.xroad_id = xroad_id
        super().__init__(f"{self.type}: {message}")

    @property
    def status(self) -> int:
        return status_for_type(self.type)

    @classmethod
    def from_wire(cls, error_type: str, message: str, detail: str | None = None) -> XRoadError:
        """An error received from a peer (server proxy fault, ``X-Road-Error``): kept as sent.

        The type is preserved verbatim even when it is not one of our rows (so a provider's
        error passes through the consumer security server unchanged).
        """
        fault = Fault.from_type(error_type)
        err = cls(fault or Fault.INTERNAL_ERROR, message, detail=detail)
        err.fault = fault
        err.type = error_type.strip()
        err.args = (f"{err.type}: {message}",)
        return err

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "detail": self.detail}


_XML_TYPES = ("text/xml", "application/xml", "text/*")


@dataclass(frozen=True, slots=True)
class ErrorRendering:
    """An error response ready to send: status, headers, body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def wants_xml(accept: str | None) -> str | None:
    """The XML content type the ``Accept`` header asks for, or None (then JSON)."""
    if not accept:
        return None
    for item in accept.split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media in _XML_TYPES:
            return "text/xml" if media == "text/*" else media
    return None


def render_error(error: XRoadError, accept: str | None = None) -> ErrorRendering:
    """The REST error response for ``error`` (JSON, or XML when ``Accept`` asks for it)."""
    xml_type = wants_xml(accept)
    if xml_type:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<error>'
            f"<type>{escape(error.type)}</type>"
            f"<message>{escape(error.message)}</message>"
            f"<detail>{escape(error.detail)}</detail></error>"
        ).encode()
        ctype = f"{xml_type};charset=utf-8"
    else:
        body = json.dumps(error.to_json(), separators=(",", ":")).encode()
        ctype = "application/json;charset=utf-8"
    headers = [("Content-Type", ctype), ("X-Road-Error", error.type)]
    return ErrorRendering(error.status, headers, body)
