"""Every failure of the error table produced for real, end to end, and the servers keep
serving after each one. Failures that need time to pass (OCSP ageing, configuration expiry,
time-stamping outage) run under trio's virtual clock with a scaled federation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio
import trio.testing

from chaos import FaultClient
from federation.identifiers import ClientId, ServiceId
from federation.pki import revoke_remote, unrevoke_remote
from federation.securityserver import Envelope
from tests.securityserver.exchange_helpers import (
    EE_CONSUMER,
    FI_ECHO,
    INCOME,
    Caller,
    assert_error,
    federation,
    ok,
    pem,
    ss,
    ss_entry,
)


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


async def test_request_failures_without_waiting(tmp_path: Path) -> None:
    async with federation(tmp_path) as fed:
        caller = Caller(fed)
        ee1, fi1 = ss(fed, "EE", "ee-ss1"), ss(fed, "FI", "fi-ss1")
        try:
            await ok(caller)

            # malformed request: no X-Road-Client (400)
            url = ss_entry(fed, "EE", "ee-ss1")["client_url"]
            r0 = await caller.http.get(url + "/r1/FI/GOV/0245437-2/tax/income/persons/1/income")
            assert r0.status_code == 400
            assert r0.headers["x-road-error"] == "Client.BadRequest"
            r = await caller.call(service="FI/GOV/0245437-2/tax/income", path="", client="EE/GOV")
            assert_error(r, "Client.BadRequest")

            # the client is not a registered client of this security server
            r = await caller.call(client="EE/GOV/74000091/insurance")
            assert_error(r, "Server.ClientProxy.UnknownMember")

            # unknown member / unknown instance (LV is not running, so not held)
            r = await caller.call(service="FI/GOV/9999999-9/tax/income")
            assert_error(r, "Server.ClientProxy.UnknownMember")
            r = await caller.call(service="LV/GOV/40003345734/bench/echo", path="/echo")
            assert_error(r, "Server.ClientProxy.UnknownMember")

            # unknown service at the provider's security server
            r = await caller.call(service="FI/GOV/0245437-2/tax/no-such-service")
            assert_error(r, "Server.ServerProxy.UnknownService")

            # access right not granted / removed at run time, then granted back
            r = await caller.call(
                service="FI/GOV/0245437-2/tax/vat-status", path="/companies/1/vat"
            )
            assert_error(r, "Server.ServerProxy.AccessDenied")
            income = ServiceId.parse(INCOME)
            granted = fi1.access
            fi1.access = granted.revoke(income, EE_CONSUMER)
            assert_error(await caller.call(), "Server.ServerProxy.AccessDenied")
            fi1.access = granted
            await ok(caller)

            # X-Road-Security-Server pins a server that does not host the provider
            r = await caller.call(security_server="FI/GOV/0245439-9/fi-ss2")
            assert_error(r, "Server.ClientProxy.InvalidSecurityServer")
            r = await caller.call(security_server="FI/GOV/0245437-2/fi-ss1")
            assert r.status == 200

            # tampered request in transit: body, then the signature itself
            def tamper_body(env: Envelope) -> Envelope:
                return dataclasses.replace(env, body=b'{"amount": 1000000}')

            def tamper_sig(env: Envelope) -> Envelope:
                return dataclasses.replace(env, signature=flip_last_byte(env.signature))

            for hook in (tamper_body, tamper_sig):
                ee1.tamper_request = hook
                r = await caller.call(
                    service=FI_ECHO, path="/echo", method="POST", body=b'{"amount": 1}'
                )
                assert_error(r, "Server.ServerProxy.InvalidSignatureValue")
            ee1.tamper_request = None
            await ok(caller)

            # tampered response in transit
            fi1.tamper_response = tamper_body
            r = await caller.call(service=FI_ECHO, path="/echo", method="POST", body=b"{}")
            assert_error(r, "Server.ClientProxy.InvalidSignatureValue")
            fi1.tamper_response = None
            await ok(caller)

            # the provider information system is unreachable
            fi1.server_proxy._backends[income] = ("127.0.0.1", 1, "/x")
            assert_error(await caller.call(), "Server.ServerProxy.NetworkError")
            fi1.server_proxy._backends.clear()
            await ok(caller)

            # the provider's security server is unreachable (its chaos link is down)
            async with FaultClient(fed.manifest["chaos"]["api_url"]) as fc:
                handle = await fc.partition("FI.fi-ss1")
                assert_error(await caller.call(), "Server.ClientProxy.NetworkError")
                await handle.heal()
            await ok(caller)

            # a server answers at the provider's address with a certificate that is not
            # registered for a server hosting the provider (fi-ss2 stands in for fi-ss1)
            fi1_addr = ss_entry(fed, "FI", "fi-ss1")["server_address"]
            fi2_addr = ss_entry(fed, "FI", "fi-ss2")["server_address"]
            saved = dict(ee1.addr_map)
            ee1.addr_map[fi1_addr] = saved[fi2_addr]
            ee1.client_proxy._peers.clear()
            assert_error(await caller.call(), "Server.ClientProxy.SslAuthenticationFailed")
            ee1.addr_map = saved
            await ok(caller)

            # FI -> EE still fine after all that
            r = await caller.call(
                ClientId.parse("FI/COM/2908552-1/kyc"),
                "EE/GOV/70000001/rr/person",
                "/persons/38001010000",
                via=("FI", "fi-ss2"),
            )
            assert r.status == 200, r.body
        finally:
            await caller.aclose()


async def test_revoked_and_stale_certificates(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Revocation reaches the cache at the next OCSP fetch; an unreachable responder lets
    the cached response age past ocspFreshnessSeconds. Scaled 60x with a shorter fetch
    interval (300 s -> 5 s) and freshness (900 s -> 15 s); configuration expiry 10 s."""
    async with federation(
        tmp_path, time_scale=60, ocsp_fetch_interval_s=300, ocsp_freshness_s=900
    ) as fed:
        caller = Caller(fed)
        timers = ss(fed, "EE", "ee-ss1").timers
        ee_admin = fed.manifest["instances"]["EE"]["ocsp"]["admin_url"]
        fi_admin = fed.manifest["instances"]["FI"]["ocsp"]["admin_url"]
        sign_pem = pem(fed, "EE", "ee-ss1", "EE/GOV/70000001")
        auth_pem = pem(fed, "EE", "ee-ss1")
        fi_auth_pem = pem(fed, "FI", "fi-ss1")
        wait = timers.ocsp_fetch_interval_s + 1
        try:
            await ok(caller)
            # the client member's signing certificate is revoked
            await revoke_remote(ee_admin, sign_pem)
            await trio.sleep(wait)
            r = await caller.call()
            assert_error(r, "Server.ClientProxy.CertValidation")
            assert "revoked" in r.json()["message"]
            await unrevoke_remote(ee_admin, sign_pem)
            await trio.sleep(wait)
            await ok(caller)

            # the consumer server's auth certificate is revoked
            await revoke_remote(ee_admin, auth_pem)
            await trio.sleep(wait)
            assert_error(await caller.call(), "Server.ClientProxy.CertValidation")
            await unrevoke_remote(ee_admin, auth_pem)
            await trio.sleep(wait)
            await ok(caller)

            # the provider server's auth certificate is revoked: the consumer refuses it
            await revoke_remote(fi_admin, fi_auth_pem)
            await trio.sleep(2 * wait)  # FI's next fetch, then EE's next look at it
            assert_error(await caller.call(), "Server.ClientProxy.SslAuthenticationFailed")
            await unrevoke_remote(fi_admin, fi_auth_pem)
            await trio.sleep(wait)
            await ok(caller)

            # EE's responder unreachable: the cached responses age out
            async with FaultClient(fed.manifest["chaos"]["api_url"]) as fc:
                handle = await fc.partition("EE.ocsp")
                await trio.sleep(timers.ocsp_freshness_s + 1)
                r = await caller.call()
                assert_error(r, "Server.ClientProxy.CertValidation")
                assert "fresh" in r.json()["message"]
                await handle.heal()
            await trio.sleep(timers.ocsp_retry_delay_s + 1)
            await ok(caller)
        finally:
            await caller.aclose()


async def test_outdated_configuration_and_timestamping_failure(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Scaled 60x: configuration expiry 10 s; time-stamp failure period 600 s -> 10 s."""
    async with federation(tmp_path, time_scale=60, timestamp_failure_period_s=600) as fed:
        caller = Caller(fed)
        timers = ss(fed, "EE", "ee-ss1").timers
        try:
            await ok(caller)
            async with FaultClient(fed.manifest["chaos"]["api_url"]) as fc:
                # own central server unreachable until the configuration expires
                handle = await fc.partition("EE.cs")
                await trio.sleep(timers.conf_expire_s + 1)
                assert_error(await caller.call(), "Server.ClientProxy.OutdatedGlobalConf")
                await handle.heal()
                await trio.sleep(timers.conf_update_s + 1)
                await ok(caller)

                # the TSA unreachable for longer than the acceptable failure period
                handle = await fc.partition("EE.tsa")
                await ok(caller)  # records wait for a time-stamp that cannot come
                await trio.sleep(
                    timers.timestamp_failure_period_s + 3 * timers.timestamp_retry_delay_s
                )
                assert_error(await caller.call(), "Server.ClientProxy.TimestampingFailed")
                await handle.heal()
                await trio.sleep(timers.timestamp_retry_delay_s + 1)
                await ok(caller)
        finally:
            await caller.aclose()
