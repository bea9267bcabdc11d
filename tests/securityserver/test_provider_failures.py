"""The provider security server's own refusals produced for real, end to end (docs/exchange.md
section 5): the TLS peer check (``Server.ServerProxy.SslAuthenticationFailed``), the
client's signing certificate (``CertValidation``, with the verifier's *own* instance's OCSP
freshness), the provider's expired configuration (``OutdatedGlobalConf``), and the
consumer's ``InconsistentResponse``. The servers keep serving after each one.

Requests that a consumer security server would never send are replayed straight to the
provider's server proxy over mutual TLS with another certificate (a captured, genuinely
signed envelope, so every check before the TLS peer check passes)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography import x509
from cryptography.x509 import ocsp

from chaos import FaultClient
from federation.errors import TransportError
from federation.http import HttpClient, HttpClientResponse
from federation.identifiers import ClientId, SecurityServerId
from federation.pki import (
    CertificateAuthority,
    Credential,
    build_ocsp_request,
    revoke_remote,
    unrevoke_remote,
)
from federation.securityserver import Envelope, encode_envelope, sign_envelope, transport_headers
from federation.topology._runtime import Federation
from tests.securityserver.exchange_helpers import (
    EE_CONSUMER,
    FI_ECHO,
    INSTANCES,
    Caller,
    assert_error,
    federation,
    ok,
    ss,
    ss_entry,
)

# --------------------------------------------------------------------------- helpers


def serial_of(der: bytes) -> int:
    return ocsp.load_der_ocsp_response(der).serial_number


def replace_ocsp(cert: x509.Certificate, by: bytes | None) -> Callable[[Envelope], Envelope]:
    """A ``tamper_request`` hook: the envelope's OCSP response about ``cert`` replaced by
    ``by`` (dropped when None). The OCSP parts are not signed, so the signature holds."""

    def hook(env: Envelope) -> Envelope:
        out = [d for d in env.ocsp_responses if serial_of(d) != cert.serial_number]
        assert len(out) == len(env.ocsp_responses) - 1, "the request carried one response"
        if by is not None:
            out.append(by)
        return dataclasses.replace(env, ocsp_responses=tuple(out))

    return hook


async def fetch_ocsp(fed: Federation, caller: Caller, inst: str, cred: Credential) -> bytes:
    """A response straight from ``inst``'s responder about ``cred`` (its current status)."""
    url = fed.manifest["instances"][inst]["ocsp"]["url"]
    r = await caller.http.post(
        url,
        content=build_ocsp_request(cred.cert, cred.chain[0]),
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert r.status_code == 200
    return r.content


async def capture_request(fed: Federation, caller: Caller) -> Envelope:
    """One genuine signed EE -> FI echo request envelope (the call itself succeeds)."""
    ee1 = ss(fed, "EE", "ee-ss1")
    seen: list[Envelope] = []

    def record(env: Envelope) -> Envelope:
        seen.append(env)
        return env

    ee1.tamper_request = record
    try:
        r = await caller.call(service=FI_ECHO, path="/echo", method="POST", body=b'{"n": 1}')
        assert r.status == 200, r.body
    finally:
        ee1.tamper_request = None
    (env,) = seen
    return env


def tls_client(directory: Path, cred: Credential) -> HttpClient:
    """A mutual-TLS client presenting ``cred`` (TLSv1.2, the server's certificate is not
    checked: these tests look at what the server does with ours)."""
    cred.save(directory, "auth")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(directory / "auth-chain.pem", directory / "auth.key")
    return HttpClient(ssl_context=ctx, connect_timeout_s=10.0, read_timeout_s=30.0)


async def post_envelope(
    client: HttpClient, fed: Federation, inst: str, code: str, env: Envelope
) -> HttpClientResponse:
    """POST ``env`` straight to a server proxy (not through its chaos link)."""
    host, _, port = str(ss_entry(fed, inst, code)["server_address"]).rpartition(":")
    ctype, data = encode_envelope(env)
    return await client.request(
        host,
        int(port),
        "POST",
        "/",
        headers=[("Content-Type", ctype), *transport_headers("replayed")],
        body=data,
    )


def assert_wire_error(resp: HttpClientResponse, error_type: str) -> dict[str, str]:
    """The server proxy's own error reply: status, ``X-Road-Error`` and the error JSON."""
    assert resp.header("x-road-error") == error_type, (resp.status, resp.headers, resp.body)
    assert resp.status == 500
    assert (resp.header("content-type") or "").startswith("application/json")
    body: dict[str, str] = json.loads(resp.body)
    assert body["type"] == error_type
    assert body["message"]
    assert body["detail"]
    return body


# --------------------------------------------------------------------------- TLS peer


async def test_provider_refuses_untrusted_tls_peers(tmp_path: Path) -> None:
    async with federation(tmp_path) as fed:
        caller = Caller(fed)
        ee1 = ss(fed, "EE", "ee-ss1")
        run_dir = Path(fed.manifest["run_dir"])
        clients: list[HttpClient] = []

        def client_with(name: str, cred: Credential) -> HttpClient:
            c = tls_client(tmp_path / "peers" / name, cred)
            clients.append(c)
            return c

        try:
            env = await capture_request(fed, caller)

            # control: the same envelope replayed with ee-ss1's own auth certificate passes
            own = Credential.load(run_dir / "EE" / "pki" / "ss" / "ee-ss1", "auth")
            w = await post_envelope(client_with("own", own), fed, "FI", "fi-ss1", env)
            assert w.status == 200, w.body
            assert w.header("x-road-error") is None

            # a fresh certificate from EE's own CA, for ee-ss1's very identity, whose hash
            # is not registered for any security server in EE's shared parameters
            ee_ca = CertificateAuthority.load(run_dir / "EE" / "pki")
            forged = ee_ca.issue_auth(
                SecurityServerId.parse("EE/GOV/70000001/ee-ss1"), now=ee1.clock.now() - 60
            )
            w = await post_envelope(client_with("forged", forged), fed, "FI", "fi-ss1", env)
            body = assert_wire_error(w, "Server.ServerProxy.SslAuthenticationFailed")
            assert "not registered for any security server of EE" in body["message"]

            # a registered EE server that does not host the client (ee-ss2)
            ee2 = Credential.load(run_dir / "EE" / "pki" / "ss" / "ee-ss2", "auth")
            w = await post_envelope(client_with("ee-ss2", ee2), fed, "FI", "fi-ss1", env)
            body = assert_wire_error(w, "Server.ServerProxy.SslAuthenticationFailed")
            assert "does not host EE/GOV/70000001/consumer" in body["message"]

            # a registered server of another instance (FI's CA, a held trust anchor, so the
            # handshake succeeds): not registered in the client's instance
            fi2 = Credential.load(run_dir / "FI" / "pki" / "ss" / "fi-ss2", "auth")
            w = await post_envelope(client_with("fi-ss2", fi2), fed, "FI", "fi-ss1", env)
            body = assert_wire_error(w, "Server.ServerProxy.SslAuthenticationFailed")
            assert "not registered for any security server of EE" in body["message"]

            # a CA no held instance approves: OpenSSL refuses the handshake (docs/exchange.md,
            # "Trust"), no HTTP reply at all
            rogue_ca = CertificateAuthority.create("EE", now=ee1.clock.now() - 3600)
            rogue = rogue_ca.issue_auth(
                SecurityServerId.parse("EE/GOV/70000001/ee-ss1"), now=ee1.clock.now() - 60
            )
            with pytest.raises(TransportError):
                await post_envelope(client_with("rogue", rogue), fed, "FI", "fi-ss1", env)
            await ok(caller)

            # end to end through the consumer: the auth certificate's OCSP response is
            # dropped (or replaced by a REVOKED one) in transit; the consumer passes the
            # provider's refusal through unchanged
            ee1.tamper_request = replace_ocsp(ee1.auth.cert, None)
            r = await caller.call()
            assert_error(r, "Server.ServerProxy.SslAuthenticationFailed")
            assert "no fresh GOOD OCSP response" in r.json()["message"]
            ee1.tamper_request = None
            await ok(caller)

            admin = fed.manifest["instances"]["EE"]["ocsp"]["admin_url"]
            await revoke_remote(admin, ee1.auth.cert_pem())
            revoked = await fetch_ocsp(fed, caller, "EE", ee1.auth)
            await unrevoke_remote(admin, ee1.auth.cert_pem())
            ee1.tamper_request = replace_ocsp(ee1.auth.cert, revoked)
            r = await caller.call()
            assert_error(r, "Server.ServerProxy.SslAuthenticationFailed")
            assert "is revoked" in r.json()["message"]
            ee1.tamper_request = None
            await ok(caller)
        finally:
            ee1.tamper_request = None
            for c in clients:
                await c.aclose()
            await caller.aclose()


# --------------------------------------------------------------------------- signing cert


async def test_provider_refuses_unusable_client_signing_certificates(tmp_path: Path) -> None:
    """The consumer checks its own signing certificate before signing; what arrives at the
    provider is checked again there (the OCSP parts travel unsigned beside the signature)."""
    async with federation(tmp_path) as fed:
        caller = Caller(fed)
        ee1 = ss(fed, "EE", "ee-ss1")
        signer = ee1.signer_for(EE_CONSUMER)
        assert signer is not None
        admin = fed.manifest["instances"]["EE"]["ocsp"]["admin_url"]
        try:
            await ok(caller)

            # no OCSP response for the signing certificate
            ee1.tamper_request = replace_ocsp(signer.cert, None)
            r = await caller.call()
            assert_error(r, "Server.ServerProxy.CertValidation")
            assert "no fresh GOOD OCSP response" in r.json()["message"]
            ee1.tamper_request = None
            await ok(caller)

            # a genuine REVOKED response from EE's responder instead of the GOOD one
            await revoke_remote(admin, signer.cert_pem())
            revoked = await fetch_ocsp(fed, caller, "EE", signer)
            await unrevoke_remote(admin, signer.cert_pem())
            ee1.tamper_request = replace_ocsp(signer.cert, revoked)
            r = await caller.call()
            assert_error(r, "Server.ServerProxy.CertValidation")
            assert "is revoked" in r.json()["message"]
            ee1.tamper_request = None
            await ok(caller)
        finally:
            ee1.tamper_request = None
            await caller.aclose()


async def test_provider_checks_ocsp_freshness_with_its_own_instance_setting(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """xroad.md 5: OCSP freshness is the verifier's own instance's ocspFreshnessSeconds.
    Scaled 60x: FI 900 s -> 15 s (fetching every 5 s), EE the default 3600 s -> 60 s
    (fetching every 20 s). Between 15 and 20 s after EE's fetch, EE's responses are fresh
    for EE and stale for FI."""
    fi_yaml = tmp_path / "fi.yaml"
    fi_yaml.write_text(
        INSTANCES[1].read_text()
        + "\nsettings: {ocsp_freshness_s: 900, ocsp_fetch_interval_s: 300}\n"
    )
    async with federation(tmp_path, time_scale=60, instances=[INSTANCES[0], fi_yaml]) as fed:
        caller = Caller(fed)
        ee1, fi1 = ss(fed, "EE", "ee-ss1"), ss(fed, "FI", "fi-ss1")
        signer = ee1.signer_for(EE_CONSUMER)
        assert signer is not None
        assert fi1.own_ocsp.freshness_s() == 15.0
        assert ee1.own_ocsp.freshness_s() == 60.0
        fi_limit = fi1.own_ocsp.freshness_s()
        try:
            await ok(caller)
            await ee1.own_ocsp.wait_round()  # EE's responses were just fetched
            fetched = trio.current_time()
            await trio.sleep(fi_limit + 1)
            assert trio.current_time() - fetched < ee1.timers.ocsp_fetch_interval_s

            # the auth certificate's response, checked first (the TLS peer check)
            r = await caller.call()
            assert_error(r, "Server.ServerProxy.SslAuthenticationFailed")
            message = r.json()["message"]
            assert "stale" in message, message
            assert f"limit {fi_limit:.0f} s" in message, message

            # the same with a fresh auth response from EE's responder: the signing
            # certificate's cached response is the stale one
            ee1.tamper_request = replace_ocsp(
                ee1.auth.cert, await fetch_ocsp(fed, caller, "EE", ee1.auth)
            )
            r = await caller.call()
            assert_error(r, "Server.ServerProxy.CertValidation")
            message = r.json()["message"]
            assert "signing certificate" in message, message
            assert "stale" in message, message
            assert f"limit {fi_limit:.0f} s" in message, message
            ee1.tamper_request = None

            # EE's next fetch: fresh for FI again
            await ee1.own_ocsp.wait_round()
            await ok(caller)
        finally:
            ee1.tamper_request = None
            await caller.aclose()


# --------------------------------------------------------------------------- configuration


async def test_provider_own_configuration_expired(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Scaled 60x: configuration expiry 10 s. Only fi-ss1's link to FI's central server is
    cut: EE's servers keep FI's configuration, fi-ss1 keeps EE's (downloaded from EE's
    central server)."""
    async with federation(tmp_path, time_scale=60) as fed:
        caller = Caller(fed)
        fi1 = ss(fed, "FI", "fi-ss1")
        timers = fi1.timers
        try:
            await ok(caller)
            async with FaultClient(fed.manifest["chaos"]["api_url"]) as fc:
                handle = await fc.partition("FI.fi-ss1--FI.cs")
                await trio.sleep(timers.conf_expire_s + 1)
                assert fi1.conf.is_outdated()
                assert not ss(fed, "EE", "ee-ss1").conf.is_outdated()
                r = await caller.call()
                assert_error(r, "Server.ServerProxy.OutdatedGlobalConf")
                assert "FI" in r.json()["message"]
                await handle.heal()
                await trio.sleep(timers.conf_update_s + 1)
                await ok(caller)
        finally:
            await caller.aclose()


# --------------------------------------------------------------------------- consumer


def rewrite_line(header_part: bytes, name: bytes, value: bytes) -> bytes:
    lines = header_part.split(b"\r\n")
    hits = [i for i, line in enumerate(lines) if line.lower().startswith(name + b":")]
    assert len(hits) == 1, header_part
    lines[hits[0]] = name + b":" + value
    return b"\r\n".join(lines)


async def test_consumer_refuses_inconsistent_response(tmp_path: Path) -> None:
    """A provider server that signs a response that does not answer the request (the
    hook re-signs with the provider member's genuine key, so the signature, its chain
    and its OCSP response are all valid)."""
    async with federation(tmp_path) as fed:
        caller = Caller(fed)
        fi1 = ss(fed, "FI", "fi-ss1")
        signer = fi1.signer_for(ClientId.parse("FI/GOV/0245437-2"))
        assert signer is not None
        other_hash = base64.b64encode(hashlib.sha512(b"another request").digest())
        cases = [
            (b"x-road-request-hash", other_hash, "request hash"),
            (b"x-road-id", b"EE-not-this-one", "X-Road-Id"),
            (b"x-road-request-id", b"0b6c0000-0000-4000-8000-000000000000", "request id"),
        ]
        try:
            await ok(caller)
            for name, value, problem in cases:

                def forge(env: Envelope, name: bytes = name, value: bytes = value) -> Envelope:
                    return sign_envelope(
                        "response",
                        rewrite_line(env.header_part, name, value),
                        env.body,
                        signer=signer,
                        ocsp_responses=env.ocsp_responses,
                    )

                fi1.tamper_response = forge
                r = await caller.call(service=FI_ECHO, path="/echo", method="POST", body=b"{}")
                assert_error(r, "Server.ClientProxy.InconsistentResponse")
                assert problem in r.json()["message"]
                fi1.tamper_response = None
                await ok(caller)
        finally:
            fi1.tamper_response = None
            await caller.aclose()
