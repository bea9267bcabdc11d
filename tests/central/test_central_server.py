"""Central servers over real loopback sockets (port 0): serving, anchors, the openssl recipe,
configuration clients over HTTP with a url_map, and the run-dir status."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest
import trio

from federation.central import CentralServer, CentralServerAddresses
from federation.clock import FixedClock, SystemClock
from federation.errors import GlobalConfError
from federation.globalconf import (
    AnchorSource,
    ConfigurationAnchor,
    ConfigurationClient,
    ConfSigningKey,
    central_dir,
    collect_status,
    render_status,
)
from federation.http import HttpClient
from tests.globalconf.fed import facts_for, shipped

# The recipe of docs/globalconf.md, "Verify with curl and openssl" (kept identical).
RECIPE = r"""
set -eu
jq -r '.sources[0].verification_certs[0]' "$ANCHOR" > anchor-cert.pem
curl -sf -o conf.bin "$CS/externalconf"
inner=$(grep -a -o -m1 'boundary=inner[0-9a-f]*' conf.bin | cut -d= -f2)
awk -v b="--$inner" '$0 == b "\r" {p=1} p {print} $0 == b "--\r" {exit}' conf.bin > part1.bin
awk '/^Content-Type: application\/pkcs7-signature/ {h=1} h && $0 == "\r" {s=1; next}
     s && /^--/ {exit} s {sub(/\r$/, ""); print}' conf.bin | openssl base64 -d > sig.der
openssl cms -verify -binary -inform DER -in sig.der -content part1.bin \
    -CAfile anchor-cert.pem -out /dev/null
loc=$(grep -a -o -m1 '/V5/[0-9]*/shared-params.json' part1.bin)
curl -sf -o shared-params.json "$CS$loc"
want=$(awk -v l="Content-location: $loc" '$0 == l "\r" {f=1} f && $0 == "\r" {g=1; next}
       g {sub(/\r$/, ""); print; exit}' part1.bin)
have=$(openssl dgst -sha512 -binary shared-params.json | openssl base64 -A)
test "$want" = "$have"
"""


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


async def start(
    nursery: trio.Nursery, inst: str, run_dir: Path, **kw: object
) -> tuple[CentralServer, CentralServerAddresses]:
    d = kw.pop("definition", None) or shipped()[inst]
    cs = CentralServer(
        d,  # type: ignore[arg-type]
        facts_for(d),  # type: ignore[arg-type]
        clock=kw.pop("clock", SystemClock()),  # type: ignore[arg-type]
        state_dir=central_dir(run_dir, inst),
        **kw,  # type: ignore[arg-type]
    )
    addrs: CentralServerAddresses = await nursery.start(cs.run)
    return cs, addrs


async def post_anchor(mgmt_url: str, body: bytes) -> tuple[int, dict[str, str]]:
    host, port = mgmt_url.removeprefix("http://").split(":")
    client = HttpClient()
    try:
        r = await client.request(host, int(port), "POST", "/trusted-anchors", body=body)
    finally:
        await client.aclose()
    return r.status, json.loads(r.body)


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("openssl", "curl", "jq", "awk")),
    reason="needs openssl, curl, jq, awk",
)
async def test_openssl_recipe_verifies_external_conf(nursery: trio.Nursery, tmp_path: Path) -> None:
    _cs, addrs = await start(nursery, "EE", tmp_path)
    anchor = central_dir(tmp_path, "EE") / "external-anchor.json"
    assert json.loads(anchor.read_text())["sources"][0]["download_url"] == (
        addrs.public_url + "/externalconf"
    )
    env = {"PATH": "/usr/bin:/bin", "CS": addrs.public_url, "ANCHOR": str(anchor)}
    result = await trio.run_process(
        ["bash", "-c", RECIPE],
        cwd=tmp_path,
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"Verification successful" in result.stderr
    # the same recipe fails against another instance's anchor certificate
    other = ConfSigningKey.generate("EE", "external", now=time.time())
    (tmp_path / "wrong.json").write_bytes(
        ConfigurationAnchor(
            instance="EE",
            generated_at=time.time(),
            sources=(
                AnchorSource(
                    download_url=addrs.public_url + "/externalconf",
                    verification_certs=(other.cert_pem,),
                ),
            ),
        ).to_bytes()
    )
    env["ANCHOR"] = str(tmp_path / "wrong.json")
    bad = await trio.run_process(
        ["bash", "-c", RECIPE],
        cwd=tmp_path,
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert bad.returncode != 0


async def test_anchor_upload_rules_over_http(nursery: trio.Nursery, tmp_path: Path) -> None:
    defs = shipped()
    ee, ee_addrs = await start(nursery, "EE", tmp_path)
    fi, fi_addrs = await start(nursery, "FI", tmp_path)
    lv, _ = await start(nursery, "LV", tmp_path)

    status, body = await post_anchor(fi_addrs.management_url, ee.external_anchor().to_bytes())
    assert status == 200, body
    assert body["instance"] == "EE"
    rejections = {
        "own instance": (fi.external_anchor(), "own instance FI"),
        "private parameters": (ee.internal_anchor(), "PRIVATE-PARAMETERS"),
        "untrusted partner": (lv.external_anchor(), "FI does not trust LV"),
    }
    for anchor, why in rejections.values():
        status, body = await post_anchor(fi_addrs.management_url, anchor.to_bytes())
        assert status == 400
        assert why in body["error"]
    status, body = await post_anchor(fi_addrs.management_url, b"{not json")
    assert status == 400
    assert "invalid configuration anchor" in body["error"]

    # a bad signature: EE's URL with a certificate EE never signed with
    forged = ConfigurationAnchor(
        instance="EE",
        generated_at=time.time(),
        sources=(
            AnchorSource(
                download_url=ee_addrs.public_url + "/externalconf",
                verification_certs=(
                    ConfSigningKey.generate("EE", "external", now=time.time()).cert_pem,
                ),
            ),
        ),
    )
    with pytest.raises(GlobalConfError, match="not in the anchor"):
        await fi.upload_trusted_anchor(forged)

    # an expired configuration: a partner whose clock is an hour behind
    stale_ee = CentralServer(
        defs["EE"], clock=FixedClock(time.time() - 3600), state_dir=tmp_path / "stale"
    )
    await nursery.start(stale_ee.run)
    with pytest.raises(GlobalConfError, match="expired at"):
        await fi.upload_trusted_anchor(stale_ee.external_anchor())

    # unreachable through the url_map (a chaos link that is down)
    fi.url_map = {ee_addrs.public_url: f"http://127.0.0.1:{closed_port()}"}
    with pytest.raises(GlobalConfError, match="cannot download"):
        await fi.upload_trusted_anchor(ee.external_anchor())
    fi.url_map = None

    # the accepted anchor is in FI's private parameters and its status file
    assert [a.instance for a in fi.trusted_anchors] == ["EE"]
    assert fi.generator.private_parameters().anchors[0].instance == "EE"
    cs_status = collect_status(tmp_path)["central_servers"]["FI"]
    assert [a["instance"] for a in cs_status["trusted_anchors"]] == ["EE"]
    assert (central_dir(tmp_path, "FI") / "trusted-anchors" / "EE.json").exists()
    # management is not on the public listener
    host, port = fi_addrs.public_url.removeprefix("http://").split(":")
    client = HttpClient()
    r = await client.request(host, int(port), "POST", "/trusted-anchors", body=b"{}")
    assert r.status == 405
    r = await client.request(host, int(port), "GET", "/internalconf?version=2")
    assert r.status == 404
    await client.aclose()
    assert fi.remove_trusted_anchor("EE")
    assert fi.trusted_anchors == ()


async def test_conf_clients_over_http_and_status(nursery: trio.Nursery, tmp_path: Path) -> None:
    defs = shipped()
    ee, _ = await start(nursery, "EE", tmp_path)
    fi, fi_addrs = await start(nursery, "FI", tmp_path)
    await ee.upload_trusted_anchor(fi.external_anchor())
    await fi.upload_trusted_anchor(ee.external_anchor())
    clients = []
    for d, cs in ((defs["EE"], ee), (defs["FI"], fi)):
        for ss in d.security_servers:
            c = ConfigurationClient.for_security_server(
                d, ss.code, anchor=cs.internal_anchor(), clock=SystemClock(), run_dir=tmp_path
            )
            await nursery.start(c.run)
            clients.append(c)
    status = collect_status(tmp_path, now=time.time())
    servers = status["security_servers"]
    assert set(servers) == {
        "EE/GOV/70000001/ee-ss1",
        "EE/GOV/74000091/ee-ss2",
        "FI/GOV/0245437-2/fi-ss1",
        "FI/GOV/0245439-9/fi-ss2",
    }
    for sid, ss in servers.items():
        own, partner = sid[:2], "FI" if sid.startswith("EE") else "EE"
        assert set(ss["globalconf"]) == {own, partner}
        for c in ss["globalconf"].values():
            assert c["verified"] is True
            assert c["expired"] is False
    assert set(status["central_servers"]) == {"EE", "FI"}
    text = render_status(status)
    assert "FI/GOV/0245439-9/fi-ss2" in text
    assert "verified" in text

    # a url_map pointing at a closed port (a chaos link down): the download fails, logged
    port = closed_port()
    fi_client = ConfigurationClient(
        anchor=fi.internal_anchor(),
        admits=lambda _i: True,
        timers=defs["FI"].scaled_timers,
        clock=SystemClock(),
        url_map={fi_addrs.public_url: f"http://127.0.0.1:{port}"},
    )
    await fi_client.update_once()
    assert fi_client.is_outdated()
    assert "cannot connect" in fi_client.status()["globalconf"]["FI"]["last_error"]


async def test_anchor_upload_of_a_corrupted_directory_answers_400() -> None:
    """A partner serving a directory whose signing certificate has a subject that does not
    parse (a corrupted download): the upload is refused with 400 and a message, not 500."""
    import base64

    from federation.clock import FixedClock
    from federation.globalconf import parse_signed_directory
    from federation.http import Request, Response
    from tests.globalconf.fed import WALL0, LocalNet, central, with_trusts

    net, clock, defs = LocalNet(), FixedClock(WALL0), shipped()
    ee = central(defs["EE"], net, clock)
    fi = central(with_trusts(defs["FI"], "EE"), net, clock)
    ctype, body = ee.current.external
    sig = parse_signed_directory(ctype, body).signature_der
    cert = ee.generator.external_key.cert
    name = cert.subject.public_bytes()
    org = b"\x0c\x11EE central server"  # UTF8String O=
    assert org in name
    first = sig.index(name)  # the certificate's issuer, then (self-signed) its subject
    second = sig.index(name, first + 1)
    bad_name = name.replace(org, org[:-1] + b"\xff")
    bad_sig = sig[:second] + bad_name + sig[second + len(name) :]

    def lines(der: bytes) -> bytes:
        b64 = base64.b64encode(der)
        return b"\r\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))

    assert lines(sig) in body
    bad_body = body.replace(lines(sig), lines(bad_sig))

    async def corrupting(req: Request) -> Response:
        resp = await ee.handle(req)
        if req.path == "/externalconf":
            return Response(resp.status, resp.headers, bad_body)
        return resp

    net.add("http://ee-cs.test", corrupting)
    resp = await fi.handle_management(
        Request("POST", "/trusted-anchors", [], ee.external_anchor().to_bytes())
    )
    assert resp.status == 400, resp.body
    error = json.loads(resp.body)["error"]
    assert error.startswith("EE: signature does not verify:")
    assert "unparsable subject" in error
    assert fi.trusted_anchors == ()


async def test_anchor_upload_with_a_bad_download_url_answers_400() -> None:
    """An anchor whose download_url has a port out of range: 400 saying so, not 500; the
    same anchor made in code reaches the fetcher, which refuses it as a download error."""
    import dataclasses

    from federation.clock import FixedClock
    from federation.http import Request
    from tests.globalconf.fed import WALL0

    defs = shipped()
    clock = FixedClock(WALL0)
    ee = CentralServer(defs["EE"], clock=clock, public_url="http://ee-cs.test")
    fi = CentralServer(defs["FI"], clock=clock, public_url="http://fi-cs.test")
    good = ee.external_anchor()
    bad = dataclasses.replace(
        good,
        sources=(
            dataclasses.replace(
                good.sources[0], download_url="http://ee-cs.test:99999/externalconf"
            ),
        ),
    )
    resp = await fi.handle_management(Request("POST", "/trusted-anchors", [], bad.to_bytes()))
    assert resp.status == 400, resp.body
    assert json.loads(resp.body)["error"] == (
        "invalid configuration anchor: $.sources[0].download_url: Port out of range 0-65535 "
        "(expected http://HOST[:PORT]/PATH, found 'http://ee-cs.test:99999/externalconf')"
    )
    with pytest.raises(GlobalConfError, match=r"cannot download.*Port out of range"):
        await fi.upload_trusted_anchor(bad)
    assert fi.trusted_anchors == ()


async def test_one_character_instance_id_serves_its_configuration() -> None:
    from federation.clock import FixedClock
    from federation.globalconf import parse_signed_directory, verify_signed_directory
    from federation.topology import parse_instance
    from tests.globalconf.fed import WALL0, LocalNet, central

    d = parse_instance(
        {
            "instance": "X",
            "member_classes": ["GOV"],
            "members": [{"id": "GOV/1", "name": "One"}],
            "security_servers": [{"code": "x-ss1", "owner": "GOV/1"}],
        },
        file="x.yaml",
    )
    clock = FixedClock(WALL0)
    cs = central(d, LocalNet(), clock)
    ctype, body = cs.current.internal
    verify_signed_directory(
        parse_signed_directory(ctype, body), anchor=cs.internal_anchor(), now=WALL0
    )
