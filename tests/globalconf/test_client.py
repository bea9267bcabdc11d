"""Configuration client: timers under autojump_clock, tampering, replay, federation rules.

Central servers run in-process behind :class:`LocalNet` (no sockets), so virtual time only
moves when every task waits on a timer.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import trio
import trio.testing

from federation.central import CentralServer
from federation.clock import TrioClock, iso
from federation.errors import GlobalConfError
from federation.globalconf import (
    SHARED_PARAMETERS,
    ConfClientCore,
    ConfigurationClient,
    ConfSigningKey,
    Fetch,
    collect_status,
    render_status,
)
from federation.topology import AllowedFederations, InstanceDef
from tests.globalconf.fed import WALL0, LocalNet, central, shipped, with_trusts


def client_for(
    d: InstanceDef,
    cs: CentralServer,
    net: LocalNet,
    clock: TrioClock,
    code: str,
    *,
    admits: AllowedFederations | None = None,
    state_dir: Path | None = None,
) -> ConfigurationClient:
    ss = d.security_server(code)
    assert ss is not None
    return ConfigurationClient(
        anchor=cs.internal_anchor(),
        admits=(admits or ss.allowed_federations).admits,
        timers=d.scaled_timers,
        clock=clock,
        server_id=str(ss.id),
        fetcher=net,
        state_dir=state_dir,
    )


async def federate(*servers: CentralServer) -> None:
    """Upload every partner's external anchor where the definition trusts it."""
    for cs in servers:
        for other in servers:
            if other is not cs and other.instance in cs.definition.trusts:
                await cs.upload_trusted_anchor(other.external_anchor())


async def test_own_copy_expires_exactly_conf_expire_after_last_download(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    clock = TrioClock(wall0=WALL0)
    ee = shipped()["EE"]
    net = LocalNet()
    cs = central(ee, net, clock)
    client = client_for(ee, cs, net, clock, "ee-ss2", admits=AllowedFederations())
    await nursery.start(client.run)
    t0 = clock.now()
    assert not client.is_outdated()
    assert client.own_expires() == t0 + 600
    assert client.shared_parameters("EE") is not None
    assert client.timestamping_interval_s() == 60.0
    assert client.ocsp_freshness_s() == 3600.0

    await trio.sleep(90)  # downloads at t0 and t0+60
    net.down.add("http://ee-cs.test")  # central server partitioned
    last = t0 + 60
    assert client.status()["globalconf"]["EE"]["downloaded_at"] == iso(last)
    await trio.sleep_until(trio.current_time() + (last + 600 - clock.now()) - 0.001)
    assert not client.is_outdated()
    assert "connection refused" in client.status()["globalconf"]["EE"]["last_error"]
    await trio.sleep(0.001)
    assert clock.now() == last + 600
    assert client.is_outdated()
    assert client.shared_parameters("EE") is None
    # healing: the next round brings it back
    net.down.clear()
    await client.wait_round()
    assert not client.is_outdated()


async def test_time_scale_divides_expiry(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    clock = TrioClock(wall0=WALL0)
    ee = dataclasses.replace(shipped()["EE"], time_scale=60.0)
    net = LocalNet()
    cs = central(ee, net, clock)
    client = client_for(ee, cs, net, clock, "ee-ss1", admits=AllowedFederations())
    await nursery.start(client.run)
    assert client.own_expires() == pytest.approx(clock.now() + 10.0)
    net.down.add("http://ee-cs.test")
    await trio.sleep(9.99)
    assert not client.is_outdated()
    await trio.sleep(0.02)
    assert client.is_outdated()


async def test_partner_expiry_drops_only_the_partner(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path
) -> None:
    clock = TrioClock(wall0=WALL0)
    defs = shipped()
    net = LocalNet()
    cs_ee, cs_fi = central(defs["EE"], net, clock), central(defs["FI"], net, clock)
    await federate(cs_ee, cs_fi)
    state = tmp_path / "EE" / "ss" / "ee-ss1" / "globalconf"
    client = client_for(defs["EE"], cs_ee, net, clock, "ee-ss1", state_dir=state)
    await nursery.start(client.run)
    assert client.instances() == ["EE", "FI"]
    fi = client.shared_parameters("FI")
    assert fi is not None
    assert fi.has_client(fi.members[0].id)
    t_fi = client.status()["globalconf"]["FI"]["downloaded_at"]

    net.down.add("http://fi-cs.test")
    await trio.sleep(599)
    assert client.shared_parameters("FI") is not None
    await trio.sleep(1)
    assert clock.now() == WALL0 + 600
    assert client.shared_parameters("FI") is None  # partner gone
    assert not client.is_outdated()  # own instance unaffected
    assert client.instances() == ["EE"]
    await client.wait_round()
    status = json.loads((state / "status.json").read_text())
    assert status["globalconf"]["FI"]["downloaded_at"] == t_fi
    assert status["globalconf"]["FI"]["expired"] is True
    assert status["globalconf"]["EE"]["verified"] is True
    assert (state / "FI" / "shared-parameters.json").exists()
    assert (state / "EE" / "private-parameters.json").exists()
    # the run-dir status view
    view = collect_status(tmp_path, now=clock.now())
    ss = view["security_servers"]["EE/GOV/70000001/ee-ss1"]
    assert ss["globalconf"]["EE"]["expired"] is False
    assert ss["globalconf"]["FI"]["expired"] is True
    assert "EE/GOV/70000001/ee-ss1" in render_status(view)


async def test_federation_allowed_on_one_side_only(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    clock = TrioClock(wall0=WALL0)
    defs = shipped()
    ee = with_trusts(defs["EE"])  # EE trusts nobody, FI trusts EE
    net = LocalNet()
    cs_ee, cs_fi = central(ee, net, clock), central(defs["FI"], net, clock)
    with pytest.raises(GlobalConfError, match="EE does not trust FI"):
        await cs_ee.upload_trusted_anchor(cs_fi.external_anchor())
    await cs_fi.upload_trusted_anchor(cs_ee.external_anchor())
    ee_client = client_for(ee, cs_ee, net, clock, "ee-ss1", admits=AllowedFederations(all=True))
    fi_client = client_for(defs["FI"], cs_fi, net, clock, "fi-ss2")
    await nursery.start(ee_client.run)
    await nursery.start(fi_client.run)
    await trio.sleep(300)
    assert ee_client.instances() == ["EE"]
    assert "FI" not in ee_client.status()["globalconf"]
    assert fi_client.instances() == ["FI", "EE"]
    # a server whose allowed-federations is "none" never downloads the partner either
    fi_none = client_for(defs["FI"], cs_fi, net, clock, "fi-ss1", admits=AllowedFederations())
    await nursery.start(fi_none.run)
    assert fi_none.instances() == ["FI"]


async def test_asymmetric_three_instances(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    clock = TrioClock(wall0=WALL0)
    defs = shipped()
    net = LocalNet()
    servers = [central(defs[i], net, clock) for i in ("EE", "FI", "LV")]
    await federate(*servers)
    assert [a.instance for a in servers[0].trusted_anchors] == ["FI", "LV"]
    assert [a.instance for a in servers[1].trusted_anchors] == ["EE"]
    held = {}
    for d, cs in zip((defs["EE"], defs["FI"], defs["LV"]), servers, strict=True):
        for ss in d.security_servers:
            c = client_for(d, cs, net, clock, ss.code)
            await nursery.start(c.run)
            held[ss.code] = c.instances()
    assert held == {
        "ee-ss1": ["EE", "FI", "LV"],
        "ee-ss2": ["EE", "FI"],  # allowed_federations: [FI]
        "fi-ss1": ["FI", "EE"],
        "fi-ss2": ["FI", "EE"],  # "all", but FI's central server trusts only EE
        "lv-ss1": ["LV", "EE"],
        "lv-ss2": ["LV", "EE"],
    }


# ---------------------------------------------------------------- tampering (core level)


async def test_tampered_wrong_signer_and_replay_keep_last_good_copy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = TrioClock(wall0=WALL0)
    ee = shipped()["EE"]
    net = LocalNet()
    cs = central(ee, net, clock)
    core = ConfClientCore(anchor=cs.internal_anchor(), admits=lambda _i: False)
    fetch: Fetch = core.own_fetch()

    def offer(ctype: str, body: bytes, files: dict[str, bytes] | None = None) -> None:
        now = clock.now()
        d = core.check_directory(fetch, ctype, body, now=now, source="t")
        if files is None:
            files = {e.content_identifier: cs.current.files[e.location] for e in d.entries}
        core.accept(fetch, d, files, content_type=ctype, body=body, now=now, source="t")

    gen1 = cs.regenerate()
    offer(*gen1.internal)
    await trio.sleep(60)
    gen2 = cs.regenerate()
    offer(*gen2.internal)
    good = core.held("EE")
    assert good is not None
    assert good.directory.serial == gen2.serial

    ctype, body = gen2.internal
    i = body.index(b"Version: 5")
    rejected = [
        # one changed byte in the signed content
        (ctype, body[:i] + b"Version: 6" + body[i + 10 :], None, "format version 6|signature"),
        # an older, correctly signed version replayed
        (*gen1.internal, None, "older configuration replayed"),
    ]
    # one changed byte in the downloaded shared parameters file
    d2 = core.check_directory(fetch, ctype, body, now=clock.now(), source="t")
    files = {e.content_identifier: gen2.files[e.location] for e in d2.entries}
    files[SHARED_PARAMETERS] = files[SHARED_PARAMETERS].replace(b"ee-ss1", b"ee-ss9")
    rejected.append((ctype, body, files, "does not match its hash"))
    # a directory signed by a key the anchor does not hold
    forger = CentralServer(
        ee,
        clock=clock,
        public_url="http://ee-cs.test",
        internal_key=ConfSigningKey.generate("EE", "internal", now=clock.now()),
    )
    rejected.append((*forger.regenerate().internal, None, "not in the anchor"))
    for ct, b, f, why in rejected:
        with pytest.raises(GlobalConfError, match=why):
            offer(ct, b, f)
        assert core.held("EE") is good
    assert not core.is_outdated(clock.now())


async def test_shell_logs_rejection_and_keeps_copy(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    clock = TrioClock(wall0=WALL0)
    ee = shipped()["EE"]
    net = LocalNet()
    cs = central(ee, net, clock)
    client = client_for(ee, cs, net, clock, "ee-ss1", admits=AllowedFederations())
    await nursery.start(client.run)
    good = client.core.held("EE")

    async def tampering(req: object) -> object:
        resp = await cs.handle(req)  # type: ignore[arg-type]
        if resp.body.startswith(b"--outer"):
            i = resp.body.index(b"Serial: ") + 8
            resp.body = resp.body[:i] + b"9" + resp.body[i + 1 :]
        return resp

    net.add("http://ee-cs.test", tampering)  # type: ignore[arg-type]
    await client.wait_round()
    assert client.core.held("EE") is good
    assert "signature does not verify" in client.status()["globalconf"]["EE"]["last_error"]
    assert client.status()["globalconf"]["EE"]["rejections"] == 1
    assert any("rejected configuration" in r.getMessage() for r in caplog.records)


BAD_URLS = [
    ("http://ee-cs.test:99999/internalconf", "Port out of range"),
    ("http://ee-cs.test:abc/internalconf", "could not be cast to integer"),
    ("http://[::1/internalconf", "Invalid IPv6 URL"),
    ("http://[zz]/internalconf", "does not appear to be an IPv4 or IPv6 address"),
    ("http://ee-cs.test:0/internalconf", "port 0"),
    ("http://" + "a" * 70 + ".test/internalconf", "cannot be encoded"),
    ("https://ee-cs.test/internalconf", "scheme 'https' is not supported"),
    ("http:///internalconf", "no host"),
    ("http://ee-cs.test/internal conf", "whitespace"),
]


@pytest.mark.parametrize(("url", "why"), BAD_URLS)
async def test_http_fetcher_rejects_a_bad_url_as_transport_error(url: str, why: str) -> None:
    from federation.errors import TransportError
    from federation.globalconf import HttpFetcher

    fetcher = HttpFetcher(timeout_s=1.0, connect_timeout_s=1.0)
    try:
        with pytest.raises(TransportError, match=f"unsupported configuration URL .*{why}"):
            await fetcher(url)
    finally:
        await fetcher.aclose()


async def test_client_with_a_bad_anchor_url_fails_the_download_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An anchor made in code (not read from a file) with a bad URL: the round completes
    with a download error, it does not take the instance down."""
    from federation.globalconf import AnchorSource, HttpFetcher

    clock = TrioClock(wall0=WALL0)
    ee = shipped()["EE"]
    cs = central(ee, LocalNet(), clock)
    good = cs.internal_anchor()
    bad = dataclasses.replace(
        good,
        sources=(
            AnchorSource(
                download_url="http://ee-cs.test:99999/internalconf",
                verification_certs=good.sources[0].verification_certs,
            ),
        ),
    )
    client = ConfigurationClient(
        anchor=bad,
        admits=lambda _i: True,
        timers=ee.scaled_timers,
        clock=clock,
        fetcher=HttpFetcher(timeout_s=1.0, connect_timeout_s=1.0),
    )
    await client.update_once()
    assert client.is_outdated()
    assert "Port out of range" in client.status()["globalconf"]["EE"]["last_error"]
    assert isinstance(client._fetcher, HttpFetcher)
    await client._fetcher.aclose()


def test_for_security_server_rejects_another_instances_anchor() -> None:
    from federation.clock import FixedClock
    from federation.errors import ConfigError

    defs, clock = shipped(), FixedClock(WALL0)
    net = LocalNet()
    fi_anchor = central(defs["FI"], net, clock).internal_anchor()
    with pytest.raises(ConfigError) as info:
        ConfigurationClient.for_security_server(
            defs["EE"], "ee-ss1", anchor=fi_anchor, clock=clock, fetcher=net
        )
    assert str(info.value) == (
        f"{defs['EE'].source}: security server EE/GOV/70000001/ee-ss1 of instance EE was given "
        "the configuration anchor of instance FI; its configuration client needs its own "
        "instance's internal anchor"
    )
    ee_anchor = central(defs["EE"], net, clock).internal_anchor()
    client = ConfigurationClient.for_security_server(
        defs["EE"], "ee-ss1", anchor=ee_anchor, clock=clock, fetcher=net
    )
    assert client.instance == "EE"
