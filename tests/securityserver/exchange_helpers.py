"""Helpers for the end-to-end exchange tests: a federation of EE and FI in this trio run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from federation.identifiers import ClientId
from federation.infosystems import XRoadResponse, xroad_call
from federation.pki import cms_verify_detached, load_certs_pem
from federation.securityserver import MessageLog, signed_data
from federation.securityserver._server import SecurityServer
from federation.topology._runtime import Federation, make_plan, open_federation_in_process

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = [ROOT / "instances" / "ee.yaml", ROOT / "instances" / "fi.yaml"]

EE_CONSUMER = ClientId.parse("EE/GOV/70000001/consumer")
EE_ONBOARDING = ClientId.parse("EE/COM/14000001/onboarding")
FI_KYC = ClientId.parse("FI/COM/2908552-1/kyc")
INCOME = "FI/GOV/0245437-2/tax/income"
INCOME_PATH = "/persons/38001010000/income"
FI_ECHO = "FI/GOV/0245437-2/bench/echo"
EE_PERSON = "EE/GOV/70000001/rr/person"


@asynccontextmanager
async def federation(
    tmp_path: Path,
    *,
    time_scale: float = 1.0,
    instances: list[Path] | None = None,
    **settings: float,
) -> AsyncIterator[Federation]:
    """EE and FI (or ``instances``) in this trio run; ``settings`` override every
    instance's timers (X-Road seconds)."""
    plan = make_plan(
        instances or INSTANCES,
        tmp_path / "run",
        time_scale=time_scale,
        settings=settings or None,
    )
    async with open_federation_in_process(plan) as fed:
        yield fed


def ss(fed: Federation, inst: str, code: str) -> SecurityServer:
    return fed.nodes[inst].security_servers[code]


def ss_entry(fed: Federation, inst: str, code: str) -> dict[str, Any]:
    for entry in fed.manifest["instances"][inst]["security_servers"].values():
        if entry["code"] == code:
            return dict(entry)
    raise KeyError(code)


def pem(fed: Federation, inst: str, code: str, which: str = "auth_cert") -> bytes:
    """A certificate of a security server from the manifest: ``auth_cert`` or a member
    of ``sign_certs`` (``which="EE/GOV/70000001"``)."""
    entry = ss_entry(fed, inst, code)
    path = entry["auth_cert"] if which == "auth_cert" else entry["sign_certs"][which]
    return Path(path).read_bytes()


def client_url(fed: Federation, inst: str, code: str) -> str:
    return str(ss_entry(fed, inst, code)["client_url"])


class Caller:
    """One httpx client for a test; ``call`` is :func:`xroad_call` through a client proxy."""

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.http = httpx.AsyncClient(timeout=30.0)

    async def call(
        self,
        client: ClientId | str = EE_CONSUMER,
        service: str = INCOME,
        path: str = INCOME_PATH,
        *,
        via: tuple[str, str] = ("EE", "ee-ss1"),
        **kw: Any,
    ) -> XRoadResponse:
        return await xroad_call(
            client_url(self.fed, *via), client, service, path, http=self.http, **kw
        )

    async def aclose(self) -> None:
        await self.http.aclose()


async def ok(caller: Caller) -> None:
    """The standard EE -> FI call still works (the servers keep serving)."""
    r = await caller.call()
    assert r.status == 200, (r.status, r.body)
    assert r.xroad_error is None


def assert_error(resp: XRoadResponse, error_type: str) -> None:
    assert resp.xroad_error == error_type, (resp.status, resp.headers, resp.body)
    assert resp.status == (500 if error_type.startswith("Server.") else 400)
    body = resp.json()
    assert body["type"] == error_type
    assert body["message"]
    assert body["detail"]


def assert_logged_and_signed(
    fed: Federation, inst: str, code: str, xroad_id: str, side: str
) -> None:
    """The server's message log holds the request and the response of ``xroad_id`` and
    both signatures verify against the signer's instance CA (client's for the request,
    provider's for the response) with nothing but the stored parts."""
    log = ss(fed, inst, code).log
    records = log.find(xroad_id)
    assert [(r.side, r.kind) for r in records] == [(side, "request"), (side, "response")]
    run_dir = Path(fed.manifest["run_dir"])
    for rec in records:
        signer_inst = rec.client_id.split("/")[0] if rec.kind == "request" else rec.service_id[:2]
        pki = run_dir / signer_inst / "pki"
        cms_verify_detached(
            rec.signature,
            signed_data(rec.header_part, rec.body),
            trusted_roots=load_certs_pem((pki / "root.pem").read_bytes()),
            intermediates=load_certs_pem((pki / "ca-bundle.pem").read_bytes()),
            now=rec.time,
        )
        assert rec.ocsp_responses, "OCSP responses travel with (and are logged with) messages"


def open_log(fed: Federation, inst: str, code: str) -> MessageLog:
    return MessageLog.open_readonly(ss_entry(fed, inst, code)["message_log"])
