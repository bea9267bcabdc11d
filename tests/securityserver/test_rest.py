from __future__ import annotations

import base64
import hashlib

import pytest

from federation.identifiers import ClientId, SecurityServerId, ServiceId
from federation.securityserver import (
    Fault,
    RestRequest,
    XRoadError,
    build_rest_request,
    build_rest_response,
    check_response_matches,
    parse_r1_target,
    parse_request_header_part,
    parse_response_header_part,
    request_hash,
)

SERVICE = ServiceId.parse("FI/GOV/0245437-2/tax/income")
CLIENT = ClientId.parse("EE/GOV/70000001/consumer")


def bad(fn: object, *args: object, **kw: object) -> XRoadError:
    with pytest.raises(XRoadError) as info:
        fn(*args, **kw)  # type: ignore[operator]
    assert info.value.fault is Fault.BAD_REQUEST
    assert info.value.status == 400
    return info.value


# --- path ------------------------------------------------------------------------------


def test_parse_target_full() -> None:
    t = parse_r1_target("/r1/FI/GOV/0245437-2/tax/income/persons/38001010000/income?year=2024&x=1")
    assert t.service == SERVICE
    assert t.service_path == "/persons/38001010000/income"
    assert t.query == "year=2024&x=1"
    assert t.request_path == "/r1/FI/GOV/0245437-2/tax/income/persons/38001010000/income"


def test_parse_target_minimal_and_empty_query() -> None:
    t = parse_r1_target("/r1/FI/GOV/0245437-2/tax/income")
    assert (t.service_path, t.query) == ("", None)
    t = parse_r1_target("/r1/FI/GOV/0245437-2/tax/income/?")
    assert (t.service_path, t.query) == ("/", "")


def test_parse_target_percent_decodes_each_segment() -> None:
    t = parse_r1_target("/r1/EE/GOV/A%2BB%3F/sub%28x%29/svc/a%2Fb")
    assert t.service.client.member_code == "A+B?"
    assert t.service.client.subsystem == "sub(x)"
    assert t.service_path == "/a%2Fb"  # the rest path stays raw


@pytest.mark.parametrize(
    "target",
    [
        "/r2/FI/GOV/0245437-2/tax/income",  # wrong version
        "/rx/FI/GOV/0245437-2/tax/income",  # not a version
        "/v1/FI/GOV/0245437-2/tax/income",
        "/r1/FI/GOV/0245437-2/tax",  # missing service code
        "/r1/FI/GOV",
        "/r1/FI/GOV/0245437-2//income",  # empty subsystem
        "/r1/FI/GOV/02%zz/tax/income",  # bad percent-encoding
        "/r1/FI/GOV/02%4/tax/income",
        "/r1/FI/GOV/%C3%28/tax/income",  # not UTF-8
        "/r1/FI/GOV/a%2Fb/tax/income",  # '/' is not an identifier character
        "/r1/FI/G OV/x/tax/income",
        "r1/FI/GOV/x/tax/income",
        "/listClients",
    ],
)
def test_parse_target_rejects(target: str) -> None:
    bad(parse_r1_target, target)


# --- request headers -------------------------------------------------------------------


def test_header_filtering_and_xroad_headers() -> None:
    req = build_rest_request(
        "post",
        "/r1/FI/GOV/0245437-2/tax/income/persons/1?y=2",
        [
            ("Host", "ss:8080"),  # fixed-port-ok: a header value, nothing is bound
            ("User-Agent", "curl"),
            ("Content-Length", "3"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "dropped"),
            ("Keep-Alive", "5"),
            ("Expect", "100-continue"),
            ("Transfer-Encoding", "chunked"),
            ("Accept", "application/json"),
            ("X-Road-Client", "EE/GOV/wrong/x"),
            ("X-Road-Client", "EE/GOV/70000001/consumer"),
            ("X-Road-UserId", "EE38001010000"),
            ("X-Road-Issue", "case-7"),
            ("X-Road-Represented-Party", "COM/123"),
            ("X-Road-Security-Server", "FI/GOV/0245437-2/fi-ss1"),
            ("X-Road-Request-Id", "client-forged"),
            ("X-Road-Request-Hash", "forged"),
            ("X-Custom", "kept"),
        ],
        instance="EE",
        request_id="rid-1",
        new_xroad_id="EE-gen",
    )
    names = [k for k, _ in req.headers]
    assert names == [
        "Accept",
        "X-Road-Client",
        "X-Road-Client",
        "X-Road-UserId",
        "X-Road-Issue",
        "X-Road-Represented-Party",
        "X-Road-Security-Server",
        "X-Custom",
        "x-road-request-id",
        "x-road-id",
    ]
    assert req.method == "POST"
    assert req.client == CLIENT  # last one wins
    assert req.service == SERVICE
    assert req.xroad_id == "EE-gen"
    assert req.request_id == "rid-1"
    assert req.user_id == "EE38001010000"
    assert req.issue == "case-7"
    assert str(req.represented_party) == "COM/123"
    assert req.security_server == SecurityServerId.parse("FI/GOV/0245437-2/fi-ss1")
    assert req.backend_target() == "/persons/1?y=2"


def test_client_xroad_id_is_kept_and_generated_one_has_instance_prefix() -> None:
    req = build_rest_request(
        "GET",
        "/r1/FI/GOV/0245437-2/tax/income",
        [("X-Road-Client", str(CLIENT)), ("X-Road-Id", "my-id")],
        instance="EE",
    )
    assert req.xroad_id == "my-id"
    assert [k for k, _ in req.headers].count("x-road-id") == 0
    req = build_rest_request(
        "GET", "/r1/FI/GOV/0245437-2/tax/income", [("X-Road-Client", str(CLIENT))], instance="EE"
    )
    assert req.xroad_id.startswith("EE-")
    assert len(req.xroad_id) == 3 + 36
    assert len(req.request_id) == 36
    assert req.backend_target() == "/"


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("X-Road-Client", "")],
        [("X-Road-Client", "EE/GOV")],
        [("X-Road-Client", "EE/GOV/1/2/3")],
        [("X-Road-Client", "EE/GOV/%zz")],
        [("X-Road-Client", str(CLIENT)), ("X-Road-Security-Server", "FI/GOV/x")],
        [("X-Road-Client", str(CLIENT)), ("X-Road-Represented-Party", "a/b/c")],
    ],
)
def test_bad_headers(headers: list[tuple[str, str]]) -> None:
    bad(
        build_rest_request,
        "GET",
        "/r1/FI/GOV/0245437-2/tax/income",
        headers,
        instance="EE",
    )


def test_bad_method() -> None:
    bad(
        build_rest_request,
        "CONNECT",
        "/r1/FI/GOV/0245437-2/tax/income",
        [("X-Road-Client", str(CLIENT))],
        instance="EE",
    )


# --- header parts and the request hash --------------------------------------------------

EXPECTED_REQUEST_PART = (
    b"POST\r\n"
    b"/r1/FI/GOV/0245437-2/tax/income/persons/1?y=2\r\n"
    b"Content-Type:application/json\r\n"
    b"X-Road-Client:EE/GOV/70000001/consumer\r\n"
    b"x-road-request-id:rid-1\r\n"
    b"x-road-id:EE-gen\r\n"
)


def sample_request() -> RestRequest:
    return build_rest_request(
        "POST",
        "/r1/FI/GOV/0245437-2/tax/income/persons/1?y=2",
        [("Content-Type", "application/json"), ("X-Road-Client", "EE/GOV/70000001/consumer")],
        instance="EE",
        request_id="rid-1",
        new_xroad_id="EE-gen",
    )


def test_request_header_part_bytes_and_round_trip() -> None:
    req = sample_request()
    assert req.header_part() == EXPECTED_REQUEST_PART
    again = parse_request_header_part(EXPECTED_REQUEST_PART)
    assert again == req


def test_request_hash_hand_computed() -> None:
    body = b'{"a":1}'
    h = hashlib.sha512
    by_hand = h(h(EXPECTED_REQUEST_PART).digest() + h(body).digest()).digest()
    assert request_hash(EXPECTED_REQUEST_PART, body) == by_hand
    assert request_hash(EXPECTED_REQUEST_PART, None) == h(EXPECTED_REQUEST_PART).digest()
    assert request_hash(EXPECTED_REQUEST_PART, b"") == h(EXPECTED_REQUEST_PART).digest()
    # computed independently with: (openssl dgst -sha512 -binary hp.bin;
    # openssl dgst -sha512 -binary body.bin) | openssl dgst -sha512 -binary | base64
    assert base64.b64encode(request_hash(EXPECTED_REQUEST_PART, body)).decode() == (
        "um0LpExyEbXoqgC84QKDpaNSRZxtoU59gai1TpyUPEfAge1BULfca4oAiwTERl2KwmTtV6NebbwTIkf0E2uKDg=="
    )


def test_response_header_part_and_consistency() -> None:
    req = sample_request()
    body = b'{"a":1}'
    digest = request_hash(req.header_part(), body)
    resp = build_rest_response(
        req,
        200,
        [
            ("Content-Type", "application/json"),
            ("Server", "backend"),
            ("X-Road-Id", "forged"),
            ("X-Road-Service", "forged"),
            ("X-Custom", "v"),
        ],
        request_digest=digest,
    )
    b64 = base64.b64encode(digest).decode()
    assert resp.header_part() == (
        b"200\r\nOK\r\n"
        b"Content-Type:application/json\r\n"
        b"X-Custom:v\r\n"
        b"x-road-id:EE-gen\r\n"
        b"x-road-client:EE/GOV/70000001/consumer\r\n"
        b"x-road-service:FI/GOV/0245437-2/tax/income\r\n"
        b"x-road-request-id:rid-1\r\n" + f"x-road-request-hash:{b64}\r\n".encode()
    )
    parsed = parse_response_header_part(resp.header_part())
    assert parsed == resp
    check_response_matches(req, parsed, body)
    with pytest.raises(XRoadError) as info:
        check_response_matches(req, parsed, b"other body")
    assert info.value.fault is Fault.INCONSISTENT_RESPONSE
    assert "request hash" in info.value.message


def test_response_id_encoding_escapes_question_mark() -> None:
    req = build_rest_request(
        "GET",
        "/r1/FI/GOV/a%3Fb/tax/income",
        [("X-Road-Client", "EE/GOV/c%3Fd")],
        instance="EE",
        request_id="r",
        new_xroad_id="x",
    )
    assert req.client.member_code == "c?d"
    resp = build_rest_response(req, 404, [], request_digest=b"\0" * 64)
    assert resp.header("x-road-client") == "EE/GOV/c%3Fd"
    assert resp.header("x-road-service") == "FI/GOV/a%3Fb/tax/income"
    assert resp.reason == "Not Found"
    assert parse_response_header_part(resp.header_part()).service == req.service


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"GET\r\n",
        b"GET\r\n/r1/FI/GOV/x/tax/income\r\nX-Road-Client:EE/GOV/1\r\n",  # no ids
        b"GET\r\n/r1/FI/GOV/x/tax/income\r\nbad line\r\nx-road-id:1\r\n",
        b"FOO\r\n/r1/FI/GOV/x/tax/income\r\n",
        b"GET\r\nhttp://evil/r1/FI/GOV/x/tax/income\r\nX-Road-Client:EE/GOV/1\r\nx-road-id:1\r\nx-road-request-id:2\r\n",
        b"GET\r\n/r1/FI/GOV/x/tax/income\r\nHost:x\r\n",
        b"GET\r\n/r1/FI/GOV/x/tax/income#f\r\nX-Road-Client:EE/GOV/1\r\n"
        b"x-road-id:1\r\nx-road-request-id:2\r\n",  # not canonical
    ],
)
def test_parse_request_header_part_garbage(data: bytes) -> None:
    bad(parse_request_header_part, data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"abc\r\nOK\r\n",
        b"200\r\nOK\r\nx-road-id:1\r\n",
        b"200\r\nOK\r\nx-road-id:1\r\nx-road-request-hash:!!\r\nx-road-client:EE/A/B\r\nx-road-service:EE/A/B/C/D\r\nx-road-request-id:1\r\n",
    ],
)
def test_parse_response_header_part_garbage(data: bytes) -> None:
    bad(parse_response_header_part, data)
