"""End to end over real loopback sockets: EE -> FI, FI -> EE and within EE, through the
client proxy, mutual TLS between security servers (through chaos links), the provider
information system, and back; message logs on both sides; metaservices."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import trio
import trio.testing

from federation.identifiers import ServiceId
from federation.infosystems import service_url
from federation.securityserver import request_hash
from tests.securityserver.exchange_helpers import (
    EE_CONSUMER,
    EE_ONBOARDING,
    EE_PERSON,
    FI_ECHO,
    FI_KYC,
    INCOME,
    INCOME_PATH,
    Caller,
    assert_logged_and_signed,
    federation,
    ss,
)

XROAD_RESPONSE_HEADERS = (
    "x-road-id",
    "x-road-client",
    "x-road-service",
    "x-road-request-id",
    "x-road-request-hash",
)


async def test_cross_border_and_local_exchanges(tmp_path: Path) -> None:
    async with federation(tmp_path) as fed:
        caller = Caller(fed)
        try:
            # --- EE -> FI: only X-Road-Client, as a plain curl would send it
            r = await caller.call()
            assert r.status == 200, r.body
            assert r.xroad_error is None
            h = r.xroad_headers()
            for name in XROAD_RESPONSE_HEADERS:
                assert name in h, h
            assert h["x-road-client"] == str(EE_CONSUMER)
            assert h["x-road-service"] == INCOME
            assert h["x-road-id"].startswith("EE-")
            is_url = fed.manifest["instances"]["FI"]["infosystems"]["url"]
            direct = await caller.http.get(
                service_url(is_url, ServiceId.parse(INCOME)) + INCOME_PATH
            )
            assert r.json() == direct.json()
            assert_logged_and_signed(fed, "EE", "ee-ss1", h["x-road-id"], "client")
            assert_logged_and_signed(fed, "FI", "fi-ss1", h["x-road-id"], "provider")

            # the request hash is the spec's, over what the consumer server logged
            req_rec = ss(fed, "EE", "ee-ss1").log.find(h["x-road-id"])[0]
            assert base64.b64decode(h["x-road-request-hash"]) == request_hash(
                req_rec.header_part, req_rec.body
            )

            # --- POST with a body, a custom header, a query and an X-Road-Id of our own
            r = await caller.call(
                service=FI_ECHO,
                path="/echo",
                method="POST",
                body=b'{"hello": "FI"}',
                headers=[("Content-Type", "application/json"), ("X-Custom", "kept")],
                query={"q": "1"},
                xroad_id="my-own-id-1",
                user_id="EE12345678901",
                issue="case-7",
            )
            assert r.status == 200, r.body
            echo = r.json()
            assert echo["method"] == "POST"
            assert echo["body_size"] == len(b'{"hello": "FI"}')
            assert echo["query"] == {"q": ["1"]} or echo["query"] == {"q": "1"}
            assert r.header("x-road-id") == "my-own-id-1"
            assert_logged_and_signed(fed, "EE", "ee-ss1", "my-own-id-1", "client")
            assert_logged_and_signed(fed, "FI", "fi-ss1", "my-own-id-1", "provider")
            fi_req = ss(fed, "FI", "fi-ss1").log.find("my-own-id-1")[0]
            assert b"X-Custom:kept" in fi_req.header_part
            assert b"X-Road-UserId:EE12345678901" in fi_req.header_part
            assert fi_req.body == b'{"hello": "FI"}'

            # --- octets beyond ASCII in headers (a UTF-8 file name; a stray byte in an
            # X-Road-Id) travel unchanged both ways, and no server falls over answering
            raw = "attachment; filename=Jüri.pdf".encode()
            r = await caller.call(
                service=FI_ECHO,
                path="/echo",
                method="POST",
                body=b"x",
                headers=[("X-File", raw.decode())],  # sent as UTF-8
                xroad_id="id-\xe9",
            )
            assert r.status == 200, r.body
            assert r.header("x-road-id") == "id-\xe9"
            # servers read header octets as ISO-8859-1 (docs/exchange.md, "Header values")
            logged_id = "id-\xe9".encode().decode("latin-1")
            fi_req = ss(fed, "FI", "fi-ss1").log.find(logged_id)[0]
            assert raw.decode("latin-1").encode() in fi_req.header_part
            r = await caller.call()  # both servers still serve
            assert r.status == 200, r.body

            # --- FI -> EE (fi-ss2 hosts the Nordic bank's kyc subsystem)
            r = await caller.call(FI_KYC, EE_PERSON, "/persons/38001010000", via=("FI", "fi-ss2"))
            assert r.status == 200, r.body
            assert r.header("x-road-service") == EE_PERSON
            xid = r.header("x-road-id")
            assert xid
            assert xid.startswith("FI-")
            assert_logged_and_signed(fed, "FI", "fi-ss2", xid, "client")
            assert_logged_and_signed(fed, "EE", "ee-ss1", xid, "provider")

            # --- within EE (ee-ss2 -> ee-ss1)
            r = await caller.call(
                EE_ONBOARDING, EE_PERSON, "/persons/38001010000", via=("EE", "ee-ss2")
            )
            assert r.status == 200, r.body
            xid = r.header("x-road-id")
            assert xid
            assert_logged_and_signed(fed, "EE", "ee-ss2", xid, "client")
            assert_logged_and_signed(fed, "EE", "ee-ss1", xid, "provider")

            # --- the provider IS's own errors pass through without X-Road-Error
            r = await caller.call(path="/no/such/path")
            assert r.status == 404
            assert r.xroad_error is None
        finally:
            await caller.aclose()


async def test_metaservices(tmp_path: Path) -> None:
    async with federation(tmp_path) as fed:
        caller = Caller(fed)
        try:
            base = caller.fed.manifest["instances"]["EE"]["security_servers"]
            url = next(e["client_url"] for e in base.values() if e["code"] == "ee-ss1")
            # listClients of a federated instance, JSON
            r = await caller.http.get(
                url + "/listClients",
                params={"xRoadInstance": "FI"},
                headers={"Accept": "application/json"},
            )
            assert r.status_code == 200
            ids = [m["id"] for m in r.json()["member"]]
            assert {
                "object_type": "SUBSYSTEM",
                "xroad_instance": "FI",
                "member_class": "GOV",
                "member_code": "0245437-2",
                "subsystem_code": "tax",
            } in ids
            assert all(i["xroad_instance"] == "FI" for i in ids)
            # own instance by default, XML without Accept: json
            r = await caller.http.get(url + "/listClients")
            assert r.status_code == 200
            assert r.text.startswith("<?xml")
            assert "<ns1:memberCode>70000001</ns1:memberCode>" in r.text

            # listMethods / allowedMethods of FI's tax subsystem, answered by fi-ss1
            lm = await caller.call(service="FI/GOV/0245437-2/tax/listMethods", path="")
            assert lm.status == 200, lm.body
            codes = sorted(s["service_code"] for s in lm.json()["service"])
            assert codes == ["income", "vat-status"]
            am = await caller.call(service="FI/GOV/0245437-2/tax/allowedMethods", path="")
            assert am.status == 200, am.body
            services = am.json()["service"]
            assert [s["service_code"] for s in services] == ["income"]
            assert services[0]["endpoint_list"] == [{"method": "GET", "path": "/persons/*/income"}]
            assert json.loads(am.body)["service"][0]["xroad_instance"] == "FI"
            assert am.header("x-road-service") == "FI/GOV/0245437-2/tax/allowedMethods"
        finally:
            await caller.aclose()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_both_logs_are_time_stamped_and_openssl_verifies(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """After the time-stamping interval (60 s scaled to 1 s) every record of the exchange,
    on both sides, is linked by the hash chain to a token that ``openssl ts -verify``
    accepts with the instance's CA bundle."""
    async with federation(tmp_path, time_scale=60) as fed:
        caller = Caller(fed)
        try:
            r = await caller.call()
            assert r.status == 200, r.body
            xid = r.header("x-road-id")
            assert xid
            await trio.sleep(ss(fed, "EE", "ee-ss1").timers.timestamping_interval_s * 2 + 0.5)
            for inst, code in (("EE", "ee-ss1"), ("FI", "fi-ss1")):
                log = ss(fed, inst, code).log
                records = log.find(xid)
                assert len(records) == 2
                for rec in records:
                    proof = log.chain_proof(rec.id)
                    assert proof is not None, f"{inst} record {rec.id} not time-stamped"
                    assert proof.verify()
                    d = tmp_path / f"ts-{inst}-{rec.id}"
                    d.mkdir()
                    (d / "token.der").write_bytes(proof.timestamp.token)
                    (d / "step.bin").write_bytes(proof.last_step_data())
                    bundle = Path(fed.manifest["instances"][inst]["ca_cert"])
                    cmd = [
                        "openssl", "ts", "-verify", "-token_in", "-in", str(d / "token.der"),
                        "-data", str(d / "step.bin"), "-CAfile", str(bundle),
                    ]  # fmt: skip
                    res = await trio.run_process(
                        cmd, capture_stdout=True, capture_stderr=True, check=False
                    )
                    out = res.stdout.decode() + res.stderr.decode()
                    assert res.returncode == 0, out
                    assert "Verification: OK" in out
        finally:
            await caller.aclose()
