"""A run directory filled with the real cores, without the security-server runtime:
two instances (EE, FI) with a CA, OCSP responder, TSA and configuration-signing key each,
one security server per instance with a message log, federated configuration copies, the
anchors and a manifest shaped like the runtime's."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from federation.globalconf import (
    SHARED_PARAMETERS,
    AnchorSource,
    ApprovedCA,
    ApprovedTSA,
    ConfFile,
    ConfigurationAnchor,
    ConfSigningKey,
    GlobalSettings,
    SharedParameters,
    build_signed_directory,
    cert_to_pem,
)
from federation.globalconf import (
    OcspResponder as OcspInfo,
)
from federation.identifiers import ClientId, SecurityServerId, ServiceId
from federation.pki import (
    CertificateAuthority,
    Credential,
    OcspResponder,
    TimeStampAuthority,
    build_ocsp_request,
    build_ts_query,
    parse_ts_reply,
)
from federation.securityserver import (
    Envelope,
    MessageLog,
    build_rest_request,
    build_rest_response,
    request_hash,
    sign_envelope,
)
from federation.securityserver._messagelog import Side

EE_CLIENT = ClientId.parse("EE/GOV/70000001/consumer")
EE_SERVICE = ServiceId.parse("EE/GOV/70000001/registry/persons")
FI_CLIENT = ClientId.parse("FI/GOV/0245437-2/portal")
FI_SERVICE = ServiceId.parse("FI/GOV/0245437-2/tax/income")
SERVERS = {
    "EE": SecurityServerId.parse("EE/GOV/70000001/ee-ss1"),
    "FI": SecurityServerId.parse("FI/GOV/0245437-2/fi-ss1"),
}


@dataclass
class Kit:
    inst: str
    ca: CertificateAuthority
    responder: OcspResponder
    tsa: TimeStampAuthority
    conf_key: ConfSigningKey
    sign: dict[ClientId, Credential]
    log: MessageLog
    dir: Path
    anchor_path: Path
    ca_path: Path
    root_path: Path

    def ocsp_for(self, cred: Credential, now: float) -> bytes:
        return self.responder.respond(build_ocsp_request(cred.cert, self.ca.issuer), now)


@dataclass
class FakeRun:
    run_dir: Path
    now: float
    kits: dict[str, Kit] = field(default_factory=dict)

    @classmethod
    def create(cls, run_dir: Path, *, now: float | None = None) -> FakeRun:
        now = float(int(time.time())) if now is None else now
        run = cls(run_dir, now)
        for inst, members in (
            ("EE", [EE_CLIENT.member]),
            ("FI", [FI_CLIENT.member]),
        ):
            run.kits[inst] = run._kit(inst, members)
        run._publish_conf()
        run.write_manifest()
        return run

    def _kit(self, inst: str, members: list[ClientId]) -> Kit:
        t0 = self.now - 3600
        ca = CertificateAuthority.create(inst, now=t0)
        d = self.run_dir / inst
        (d / "pki").mkdir(parents=True)
        ca.save(d / "pki")
        ocsp = ca.issue_ocsp_responder(now=t0)
        tsa = ca.issue_tsa(now=t0)
        (d / "pki" / "ocsp.pem").write_bytes(ocsp.cert_pem())
        (d / "pki" / "tsa.pem").write_bytes(tsa.cert_pem())
        return Kit(
            inst=inst,
            ca=ca,
            responder=OcspResponder(ca, ocsp, validity_s=1200),
            tsa=TimeStampAuthority(tsa),
            conf_key=ConfSigningKey.generate(inst, "external", now=t0),
            sign={m: ca.issue_sign(m, now=t0) for m in members},
            log=MessageLog(d / "ss" / SERVERS[inst].code / "messagelog.sqlite"),
            dir=d,
            anchor_path=d / "cs" / "external-anchor.json",
            ca_path=d / "pki" / "ca-bundle.pem",
            root_path=d / "pki" / "root.pem",
        )

    def shared(self, k: Kit) -> SharedParameters:
        return SharedParameters(
            instance=k.inst,
            approved_cas=(
                ApprovedCA(
                    name=f"{k.inst} CA",
                    top_ca_pem=cert_to_pem(k.ca.root.cert),
                    intermediate_pems=(cert_to_pem(k.ca.intermediate.cert),),
                    ocsp=(
                        OcspInfo(
                            url="http://ocsp.test/",
                            cert_pem=cert_to_pem(k.responder.responder.cert),
                        ),
                    ),
                ),
            ),
            approved_tsas=(
                ApprovedTSA(
                    name=f"{k.inst} TSA",
                    url="http://tsa.test/",
                    cert_pem=cert_to_pem(k.tsa.credential.cert),
                ),
            ),
            global_settings=GlobalSettings(ocsp_freshness_s=3600.0),
        )

    def _publish_conf(self) -> None:
        """Each instance's external directory, held by the *other* instance's server (as a
        federated configuration client keeps it), and each external anchor."""
        for inst, k in self.kits.items():
            shared = self.shared(k).to_bytes()
            ctype, body = build_signed_directory(
                [
                    ConfFile(
                        content_identifier=SHARED_PARAMETERS,
                        instance=inst,
                        location="/externalconf/shared-params.json",
                        data=shared,
                    )
                ],
                expire_date=self.now + 600,
                serial=7,
                signer=k.conf_key,
            )
            for other, ok in self.kits.items():
                if other == inst:
                    continue
                d = ok.dir / "ss" / SERVERS[other].code / "globalconf" / inst
                d.mkdir(parents=True, exist_ok=True)
                (d / "directory.bin").write_bytes(body)
                (d / "shared-parameters.json").write_bytes(shared)
                (d / "directory.json").write_text(
                    json.dumps({"instance": inst, "kind": "external", "content_type": ctype})
                )
            anchor = ConfigurationAnchor(
                instance=inst,
                generated_at=self.now,
                sources=(
                    AnchorSource(
                        download_url=f"http://{inst.lower()}-cs.test/externalconf",
                        verification_certs=(k.conf_key.cert_pem,),
                    ),
                ),
            )
            k.anchor_path.parent.mkdir(parents=True, exist_ok=True)
            k.anchor_path.write_bytes(anchor.to_bytes())

    def write_manifest(self) -> None:
        instances = {}
        for inst, k in self.kits.items():
            sid = SERVERS[inst]
            instances[inst] = {
                "ca_cert": str(k.ca_path),
                "ca_root": str(k.root_path),
                "ocsp": {"url": "http://ocsp.test/", "cert": str(k.dir / "pki" / "ocsp.pem")},
                "tsa": {"url": "http://tsa.test/", "cert": str(k.dir / "pki" / "tsa.pem")},
                "central_server": {"anchor": str(k.anchor_path)},
                "security_servers": {
                    str(sid): {
                        "code": sid.code,
                        "message_log": str(k.log.path),
                        "globalconf_dir": str(k.dir / "ss" / sid.code / "globalconf"),
                    }
                },
            }
        (self.run_dir / "manifest.json").write_text(
            json.dumps({"run_dir": str(self.run_dir), "instances": instances}, indent=1)
        )

    # -- traffic ------------------------------------------------------------------------

    def exchange(
        self,
        client: ClientId,
        service: ServiceId,
        *,
        body: bytes | None = b'{"q": 1}',
        response_body: bytes | None = b'{"income": 42}',
        signer: Credential | None = None,
        client_ocsp: bytes | None = None,
        now: float | None = None,
        provider_logs: bool = True,
        stop: str | None = None,
    ) -> str:
        """One exchange logged on both sides the way X-Road does; returns its X-Road-Id.

        ``stop`` ends it in transit after that record: ``"client request"`` (the provider
        never logged it), ``"provider request"`` (its information system failed) or
        ``"provider response"`` (the answer never reached the client).

        The client's request record carries the client's OCSP response; the provider's
        response record carries the provider's; the client's response record carries
        none (the exporter finds it on the provider side)."""
        now = self.now if now is None else now
        ck, pk = self.kits[client.instance], self.kits[service.instance]
        xid = f"{client.instance}-{uuid.uuid4()}"
        req = build_rest_request(
            "POST" if body else "GET",
            f"/r1/{service}/items/1".replace("r1/", "r1/", 1),
            [("X-Road-Client", str(client)), ("Content-Type", "application/json")],
            instance=client.instance,
            new_xroad_id=xid,
        )
        csign = signer or ck.sign[client.member]
        c_ocsp = client_ocsp if client_ocsp is not None else ck.ocsp_for(csign, now)
        req_env = sign_envelope(
            "request", req.header_part(), body, signer=csign, ocsp_responses=[c_ocsp]
        )
        psign = pk.sign[service.client.member]
        p_ocsp = pk.ocsp_for(psign, now)
        resp = build_rest_response(
            req,
            200,
            [("Content-Type", "application/json")],
            request_digest=request_hash(req.header_part(), body),
        )
        resp_env = sign_envelope("response", resp.header_part(), response_body, signer=psign)

        def log(to: MessageLog, env: Envelope, side: Side, ocsp: list[bytes] | None) -> None:
            to.append_envelope(
                env,
                side=side,
                xroad_id=xid,
                client_id=str(client),
                service_id=str(service),
                request_id=req.request_id,
                now=now,
                ocsp_responses=ocsp,
            )

        log(ck.log, req_env, "client", None)
        if stop == "client request":
            return xid
        if provider_logs:
            log(pk.log, req_env, "provider", None)
            if stop == "provider request":
                return xid
            log(pk.log, resp_env, "provider", [p_ocsp])
        if stop == "provider response":
            return xid
        log(ck.log, resp_env, "client", None)
        return xid

    def stamp(self, *insts: str, now: float | None = None) -> None:
        """Time-stamp every pending record of the given instances' logs (default all)."""
        now = self.now + 1 if now is None else now
        for inst in insts or tuple(self.kits):
            k = self.kits[inst]
            batch = k.log.next_batch()
            if batch is None:
                continue
            token = parse_ts_reply(
                k.tsa.respond(build_ts_query(digest=batch.chain, hash_alg="sha512"), now)
            )
            k.log.record_timestamp(batch.last_record, token, now, now=now)

    def close(self) -> None:
        for k in self.kits.values():
            k.log.close()
