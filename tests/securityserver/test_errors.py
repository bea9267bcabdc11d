from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET

import pytest

from federation.errors import FederationError
from federation.securityserver import ERROR_TABLE, Fault, XRoadError, render_error
from federation.securityserver.errors import status_for_type


def test_table_rows_are_well_formed() -> None:
    legacy = re.compile(r"^(Client|Server\.ClientProxy|Server\.ServerProxy)\.[A-Z][A-Za-z]+$")
    modern = re.compile(r"^(client|server\.clientproxy|server\.serverproxy)\.[a-z_]+$")
    for fault in ERROR_TABLE:
        assert legacy.match(fault.legacy), fault
        assert modern.match(fault.modern), fault
        assert fault.modern.split(".")[:-1] == [p.lower() for p in fault.legacy.split(".")[:-1]]
        assert fault.status == (400 if fault.legacy.startswith("Client.") else 500)
        assert fault.when


def test_required_failures_are_present() -> None:
    want = {
        "Server.ClientProxy.OutdatedGlobalConf": "server.clientproxy.global_conf_outdated",
        "Server.ClientProxy.CertValidation": "server.clientproxy.cert_validation",
        "Server.ServerProxy.SslAuthenticationFailed": (
            "server.serverproxy.ssl_authentication_failed"
        ),
        "Server.ClientProxy.UnknownMember": "server.clientproxy.unknown_member",
        "Server.ServerProxy.UnknownService": "server.serverproxy.unknown_service",
        "Server.ServerProxy.AccessDenied": "server.serverproxy.access_denied",
        "Server.ClientProxy.NetworkError": "server.clientproxy.network_error",
        "Server.ServerProxy.InvalidSignatureValue": "server.serverproxy.invalid_signature_value",
        "Server.ClientProxy.TimestampingFailed": "server.clientproxy.timestamping_failed",
        "Client.BadRequest": "client.bad_request",
        "Server.ClientProxy.InvalidSecurityServer": "server.clientproxy.invalid_security_server",
        "Server.ClientProxy.InternalError": "server.clientproxy.internal_error",
    }
    rows = {f.legacy: f.modern for f in ERROR_TABLE}
    for legacy, modern in want.items():
        assert rows[legacy] == modern
    assert Fault.BAD_REQUEST.status == 400
    assert Fault.ACCESS_DENIED.status == 500


def test_from_type_accepts_both_names() -> None:
    assert Fault.from_type("Server.ServerProxy.AccessDenied") is Fault.ACCESS_DENIED
    assert Fault.from_type("server.serverproxy.access_denied") is Fault.ACCESS_DENIED
    assert Fault.from_type("Server.ServerProxy.Nope") is None
    assert status_for_type("server.clientproxy.x") == 500
    assert status_for_type("client.bad_request") == 400


def test_xroad_error_is_a_federation_error() -> None:
    err = XRoadError(Fault.ACCESS_DENIED, "no", xroad_id="EE-1")
    assert isinstance(err, FederationError)
    assert err.type == "Server.ServerProxy.AccessDenied"
    assert err.status == 500
    uuid.UUID(err.detail)
    assert "AccessDenied" in str(err)


def test_from_wire_keeps_unknown_types() -> None:
    err = XRoadError.from_wire("Server.ServerProxy.DatabaseError", "db down", "d-1")
    assert err.type == "Server.ServerProxy.DatabaseError"
    assert err.fault is None
    assert err.detail == "d-1"
    assert err.status == 500
    known = XRoadError.from_wire("server.serverproxy.access_denied", "x")
    assert known.fault is Fault.ACCESS_DENIED
    assert known.type == "server.serverproxy.access_denied"


def test_render_json() -> None:
    err = XRoadError(Fault.BAD_REQUEST, "bad <path>", detail="abc")
    r = render_error(err, "application/json")
    assert r.status == 400
    assert ("X-Road-Error", "Client.BadRequest") in r.headers
    assert dict(r.headers)["Content-Type"].startswith("application/json")
    assert json.loads(r.body) == {
        "type": "Client.BadRequest",
        "message": "bad <path>",
        "detail": "abc",
    }
    assert render_error(err, None).body == r.body


@pytest.mark.parametrize(
    ("accept", "ctype"),
    [
        ("text/xml", "text/xml"),
        ("application/json;q=0.9, application/xml", "application/xml"),
        ("text/*", "text/xml"),
    ],
)
def test_render_xml(accept: str, ctype: str) -> None:
    err = XRoadError(Fault.ACCESS_DENIED, "a & b", detail="d")
    r = render_error(err, accept)
    assert r.status == 500
    assert dict(r.headers)["Content-Type"].startswith(ctype)
    root = ET.fromstring(r.body)
    assert root.tag == "error"
    assert [c.tag for c in root] == ["type", "message", "detail"]
    assert root.findtext("type") == "Server.ServerProxy.AccessDenied"
    assert root.findtext("message") == "a & b"
