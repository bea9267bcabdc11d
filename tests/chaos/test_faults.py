"""The fault catalogue against our server over HTTP: handles, healing, partitions, naming."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from chaos import ChaosServer, FaultClient, FaultError, link_name, link_targets
from chaos.faults import parse_link


@pytest.fixture
async def faults(chaos: ChaosServer) -> AsyncIterator[FaultClient]:
    async with FaultClient(chaos.url) as client:
        yield client


def test_link_naming() -> None:
    assert link_name("EE.ss1", "FI.ss1") == "EE.ss1--FI.ss1"
    assert parse_link("EE.ss1--EE.cs") == ("EE.ss1", "EE.cs")
    assert parse_link("redis") is None
    with pytest.raises(ValueError, match="contains"):
        link_name("a--b", "c")
    assert link_targets("EE.ss1--EE.cs", "EE.cs")
    assert link_targets("FI.ss1--EE.cs", "EE")  # everything leading into instance EE
    assert not link_targets("EE.cs--FI.ss1", "EE.cs")  # from EE.cs, not to it
    assert not link_targets("EE.ss1--EE.css", "EE.cs")
    assert link_targets("redis", "redis")


async def test_ensure_proxy_creates_then_updates(faults: FaultClient, echo_port: int) -> None:
    upstream = f"127.0.0.1:{echo_port}"
    first = await faults.ensure_proxy("a--b", "127.0.0.1:0", upstream)
    again = await faults.ensure_proxy("a--b", "127.0.0.1:0", upstream, enabled=False)
    assert again["listen"] == first["listen"]
    assert again["enabled"] is False
    back = await faults.ensure_proxy("a--b", "127.0.0.1:0", upstream)
    assert (back["listen"], back["enabled"]) == (first["listen"], True)


async def test_toxic_faults_and_heal(faults: FaultClient, echo_port: int) -> None:
    await faults.ensure_proxy("a--b", "127.0.0.1:0", f"127.0.0.1:{echo_port}")
    slow = await faults.latency("a--b", 30, jitter=5)
    thin = await faults.bandwidth("a--b", 100, stream="downstream")
    rst = await faults.reset("a--b", after_ms=5)
    cut = await faults.cut_after("a--b", 1000)
    toxics = (await faults.proxies())["a--b"]["toxics"]
    assert sorted((t["type"], t["stream"]) for t in toxics) == [
        ("bandwidth", "downstream"),
        ("latency", "downstream"),
        ("latency", "upstream"),
        ("limit_data", "downstream"),
        ("reset_peer", "downstream"),
        ("reset_peer", "upstream"),
    ]
    assert [h.kind for h in faults.active] == ["latency", "bandwidth", "reset", "cut"]
    await slow.heal()
    await slow.heal()  # idempotent
    assert slow.healed
    remaining = {t["type"] for t in (await faults.proxies())["a--b"]["toxics"]}
    assert remaining == {"bandwidth", "reset_peer", "limit_data"}
    await faults.heal_all()
    assert (await faults.proxies())["a--b"]["toxics"] == []
    assert thin.healed and rst.healed and cut.healed  # noqa: PT018
    assert faults.active == []


async def test_partition_targets_incoming_links_and_counts_overlaps(
    faults: FaultClient, echo_port: int
) -> None:
    upstream = f"127.0.0.1:{echo_port}"
    for name in ("EE.ss1--EE.cs", "FI.ss1--EE.cs", "EE.ss1--FI.ss1", "EE.cs--FI.ss1"):
        await faults.ensure_proxy(name, "127.0.0.1:0", upstream)
    listen = (await faults.proxies())["EE.ss1--EE.cs"]["listen"]
    host, port = listen.rsplit(":", 1)

    whole = await faults.partition("EE")
    central = await faults.partition("EE.cs")
    enabled = {n: p["enabled"] for n, p in (await faults.proxies()).items()}
    assert enabled == {
        "EE.ss1--EE.cs": False,
        "FI.ss1--EE.cs": False,
        "EE.ss1--FI.ss1": True,
        "EE.cs--FI.ss1": True,
    }
    with pytest.raises(OSError, match=r"refused|connect"):
        await trio.open_tcp_stream(host, int(port))
    await whole.heal()
    assert not (await faults.proxies())["EE.ss1--EE.cs"]["enabled"]  # still partitioned
    await central.heal()
    assert all(p["enabled"] for p in (await faults.proxies()).values())
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.aclose()


async def test_errors_are_fault_errors(faults: FaultClient) -> None:
    with pytest.raises(FaultError) as info:
        await faults.latency("no--such", 10)
    assert info.value.status == 404
    with pytest.raises(FaultError, match="no proxy leads"):
        await faults.partition("nowhere")
    with pytest.raises(ValueError, match="stream"):
        await faults.latency("no--such", 10, stream="sideways")
    assert faults.active == []


async def test_refused_fault_leaves_nothing_behind(faults: FaultClient, echo_port: int) -> None:
    await faults.ensure_proxy("a--b", "127.0.0.1:0", f"127.0.0.1:{echo_port}")
    with pytest.raises(FaultError) as info:
        await faults.bandwidth("a--b", 0)  # our server refuses rate 0 (Toxiproxy would stall)
    assert info.value.status == 400
    assert (await faults.proxies())["a--b"]["toxics"] == []


async def test_reset_server(faults: FaultClient, echo_port: int) -> None:
    await faults.ensure_proxy("a--b", "127.0.0.1:0", f"127.0.0.1:{echo_port}")
    handle = await faults.partition("b")
    await faults.reset_server()
    assert handle.healed
    assert (await faults.proxies())["a--b"]["enabled"] is True


async def test_scenario_toxic_faults_apply_what_the_file_says(
    faults: FaultClient, echo_port: int
) -> None:
    """A scenario's ``toxic`` step reaches the server with its checked attributes, in the
    streams it names (``limit_data`` with ``stream: both`` used to become downstream only)."""
    from federation.scenario import parse_scenario
    from federation.scenario._faults import _toxic
    from federation.scenario._model import FaultStep, ToxicFault

    await faults.ensure_proxy("a--b", "127.0.0.1:0", f"127.0.0.1:{echo_port}")
    text = """\
name: toxics
instances: [ee.yaml]
steps:
  - fault: {toxic: {link: a--b, type: limit_data, attributes: {bytes: 10}}}
  - fault: {toxic: {link: a--b, type: limit_data, attributes: {bytes: 20}, stream: upstream}}
  - fault: {toxic: {link: a--b, type: reset_peer, stream: downstream}}
  - fault: {toxic: {link: a--b, type: bandwidth, attributes: {rate: 7}, stream: upstream}}
"""
    scenario = parse_scenario(text, file="t.yaml", check_files=False)
    for step in scenario.steps:
        assert isinstance(step, FaultStep)
        assert isinstance(step.fault, ToxicFault)
        await _toxic(faults, "a--b", step.fault)
    toxics = (await faults.proxies())["a--b"]["toxics"]
    assert sorted((t["type"], t["stream"], sorted(t["attributes"].items())) for t in toxics) == [
        ("bandwidth", "upstream", [("rate", 7)]),
        ("limit_data", "downstream", [("bytes", 10)]),
        ("limit_data", "upstream", [("bytes", 10)]),
        ("limit_data", "upstream", [("bytes", 20)]),
        ("reset_peer", "downstream", [("timeout", 0)]),
    ]
