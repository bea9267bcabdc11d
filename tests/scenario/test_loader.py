from __future__ import annotations

from pathlib import Path

import pytest

from federation.errors import ScenarioError
from federation.scenario import load_scenario, parse_duration, parse_scenario
from federation.scenario._loader import parse_rate
from federation.scenario._model import (
    ExpectStep,
    FaultStep,
    HealStep,
    LatencyFault,
    PartitionFault,
    RequestStep,
    RevokeFault,
    ToxicFault,
    WaitStep,
    WaitUntilStep,
)

GOOD = """\
name: FI central server partitioned
description: traffic continues on the cached configuration
instances: [ee.yaml, fi.yaml]
time_scale: 60
seed: 7
settings: {conf_expire_s: 300}
load:
  rate: 50/s
  calls:
    - {client: EE/GOV/70000001/consumer, service: FI/GOV/0245437-2/tax/income,
       path: /persons/1/income}
    - {client: FI/COM/2908552-1/kyc, service: FI/GOV/0245437-2/tax/income,
       path: /persons/1/income, weight: 2}
steps:
  - request: {client: EE/GOV/70000001/consumer, service: FI/GOV/0245437-2/tax/income,
              path: /persons/1/income, status: 200, body_contains: income}
  - expect: {window: 30s, error_rate: 0}
  - fault: {name: cs-down, partition: FI.cs}
  - fault: {latency: {between: [EE, FI], ms: 20, jitter_ms: 5}}
  - fault: {revoke: {instance: FI, cert: auth, of: FI.fi-ss1}}
  - wait: 1m30s
  - wait_until: {error: Server.ClientProxy.OutdatedGlobalConf, within: 200s, direction: FI}
  - heal: cs-down
  - heal: all
  - wait_until: {error_rate: 0, within: 2m}
  - expect: {window: 500ms, p99_ms: 500, direction: EE->FI,
             errors_absent: [Server.ClientProxy.NetworkError]}
checks: [no_lost_messages, {steady_state: {window: 20s}}, no_central_broker]
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    for inst in ("ee.yaml", "fi.yaml"):
        (tmp_path / inst).write_text("instance: X\n")
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_scenario_parses(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, GOOD))
    assert sc.name == "FI central server partitioned"
    assert sc.instances == ((tmp_path / "ee.yaml").resolve(), (tmp_path / "fi.yaml").resolve())
    assert sc.time_scale == 60
    assert sc.seed == 7
    assert sc.settings == (("conf_expire_s", 300.0),)
    assert sc.load is not None
    assert sc.load.rate == 50.0
    assert sc.load.calls[1].weight == 2
    kinds = [type(s) for s in sc.steps]
    assert kinds == [
        RequestStep, ExpectStep, FaultStep, FaultStep, FaultStep, WaitStep,
        WaitUntilStep, HealStep, HealStep, WaitUntilStep, ExpectStep,
    ]  # fmt: skip
    f0, f1, f2 = sc.steps[2], sc.steps[3], sc.steps[4]
    assert isinstance(f0, FaultStep)
    assert f0.fault == PartitionFault(target="FI.cs")
    assert isinstance(f1, FaultStep)
    assert f1.fault == LatencyFault(ms=20, jitter_ms=5, between=("EE", "FI"))
    assert isinstance(f2, FaultStep)
    assert f2.fault == RevokeFault(instance="FI", cert="auth", of="FI.fi-ss1")
    w = sc.steps[5]
    assert isinstance(w, WaitStep)
    assert w.duration_s == 90
    wu = sc.steps[6]
    assert isinstance(wu, WaitUntilStep)
    assert wu.within_s == 200
    assert wu.filter.direction == "FI"
    ex = sc.steps[10]
    assert isinstance(ex, ExpectStep)
    assert ex.window_s == 0.5
    assert ex.p99_ms == 500
    assert [c.name for c in sc.checks] == ["no_lost_messages", "steady_state", "no_central_broker"]
    assert sc.checks[1].window_s == 20


@pytest.mark.parametrize(
    ("text", "value"),
    [("30s", 30), ("500ms", 0.5), ("2m", 120), ("1h", 3600), ("1m30s", 90), ("1.5s", 1.5)],
)
def test_durations(text: str, value: float) -> None:
    assert parse_duration(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["30", "s", "30 sec", "-1s", "1s2", 30, None, "1d"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_rates() -> None:
    assert parse_rate("50/s") == 50
    assert parse_rate("600/m") == 10
    assert parse_rate(5) == 5


def error_of(tmp_path: Path, old: str, new: str) -> ScenarioError:
    assert old in GOOD
    p = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    return info.value


def test_error_names_file_line_path_and_expectation(tmp_path: Path) -> None:
    err = error_of(tmp_path, "ms: 20,", "ms: 20ms,")
    text = str(err)
    assert text.startswith(f"{tmp_path / 's.yaml'}:19: steps[3].fault.latency.ms: ")
    assert "expected an integer >= 0" in text
    assert "'20ms'" in text
    assert err.path == "steps[3].fault.latency.ms"
    assert "\n" not in text


def test_unknown_key_with_hint(tmp_path: Path) -> None:
    err = error_of(tmp_path, "jitter_ms: 5", "jiter_ms: 5")
    assert err.path == "steps[3].fault.latency.jiter_ms"
    assert "unknown key 'jiter_ms' (did you mean 'jitter_ms'?)" in str(err)
    err = error_of(tmp_path, "seed: 7", "sed: 7")
    assert err.path == "sed"
    assert ":5:" in str(err)


def test_bad_duration_in_scenario(tmp_path: Path) -> None:
    err = error_of(tmp_path, "window: 30s", "window: 30")
    assert err.path == "steps[1].expect.window"
    assert "expected a duration like 30s, 500ms, 2m or 1m30s, found 30" in str(err)


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        ("heal: cs-down", "heal: cs-dwn", "steps[7].heal", "no earlier fault is named 'cs-dwn'"),
        ("partition: FI.cs", "partition: FI/cs", "steps[2].fault.partition", "expected FI, FI.cs"),
        ("cert: auth", "cert: tls", "steps[4].fault.revoke.cert", "expected auth or sign"),
        (
            "instance: FI, cert",
            "instance: EE, cert",
            "steps[4].fault.revoke.instance",
            "belongs to FI",
        ),
        ("rate: 50/s", "rate: fast", "load.rate", "a rate like 50/s"),
        ("error_rate: 0}", "error_rate: 2}", "steps[1].expect.error_rate", "fraction 0..1"),
        (
            "- expect: {window: 30s, error_rate: 0}",
            "- expect: {window: 30s}",
            "steps[1].expect",
            "nothing to expect",
        ),
        ("- wait: 1m30s", "- wait: 1m30s\n    heal: all", "steps[5]", "exactly one kind"),
        (
            "no_central_broker]",
            "no_central_brokers]",
            "checks[2]",
            "did you mean 'no_central_broker'",
        ),
        (
            "client: FI/COM/2908552-1/kyc",
            "client: FI-COM",
            "load.calls[1].client",
            "INSTANCE/CLASS/CODE",
        ),
        ("conf_expire_s: 300", "conf_expiry_s: 300", "settings.conf_expiry_s", "unknown key"),
        (
            "instances: [ee.yaml, fi.yaml]",
            "instances: [ee.yaml, nope.yaml]",
            "instances[1]",
            "does not exist",
        ),
        ("direction: EE->FI", "direction: EE=>FI", "steps[10].expect.direction", "bad direction"),
        ("seed: 7", "seed: 7\nseed: 8", "seed", "duplicate key"),
        ("p99_ms: 500,", "p99_ms: .nan,", "steps[10].expect.p99_ms", "a finite number > 0"),
        ("conf_expire_s: 300", "conf_expire_s: .inf", "settings.conf_expire_s", "finite"),
        (
            "p99_ms: 500,",
            "p99_ms: 500, vs: 'steps[10]',",
            "steps[10].expect.vs",
            "an earlier step, steps[N]",
        ),
        ("p99_ms: 500,", "vs: 'steps[2]', p99_ms: 500,", "steps[10].expect.vs", "a fault step"),
        (
            "p99_ms: 500,",
            "max_p50_rise_ms: 5,",
            "steps[10].expect",
            "needs the window to compare with",
        ),
        (
            "p99_ms: 500,",
            "vs: 1, min_p50_rise_ms: 9, max_p50_rise_ms: 5,",
            "steps[10].expect.max_p50_rise_ms",
            "a number >= 9",
        ),
    ],
)
def test_error_paths(tmp_path: Path, old: str, new: str, path: str, fragment: str) -> None:
    err = error_of(tmp_path, old, new)
    assert err.path == path, str(err)
    assert fragment in str(err)


def test_p50_rise_against_an_earlier_window(tmp_path: Path) -> None:
    text = GOOD.replace("p99_ms: 500,", "vs: 'steps[1]', min_p50_rise_ms: -2, max_p50_rise_ms: 5,")
    sc = load_scenario(write(tmp_path, text))
    step = sc.steps[10]
    assert isinstance(step, ExpectStep)
    assert (step.vs, step.min_p50_rise_ms, step.max_p50_rise_ms) == (1, -2.0, 5.0)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"s\.yaml:2: not valid YAML"):
        parse_scenario("name: x\n  bad: [\n", file=tmp_path / "s.yaml")
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError, match="must be a mapping"):
        parse_scenario("- a\n- b\n", file="x.yaml")


TOXIC = """\
name: toxic attributes
instances: [ee.yaml]
steps:
  - fault: {toxic: {link: EE.ss1--FI.ss1, type: TYPE, attributes: ATTRSEXTRA}}
"""


def toxic_fault(ttype: str, attrs: str, extra: str = "") -> ToxicFault:
    text = TOXIC.replace("TYPE", ttype).replace("ATTRS", attrs).replace("EXTRA", extra)
    step = parse_scenario(text, file="t.yaml", check_files=False).steps[0]
    assert isinstance(step, FaultStep)
    assert isinstance(step.fault, ToxicFault)
    return step.fault


def toxic_error(ttype: str, attrs: str) -> ScenarioError:
    text = TOXIC.replace("TYPE", ttype).replace("ATTRS", attrs).replace("EXTRA", "")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="t.yaml", check_files=False)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("t.yaml:4: ")
    return info.value


def test_toxic_attributes_are_checked_per_type() -> None:
    assert toxic_fault("bandwidth", "{rate: 100}").attributes == (("rate", 100),)
    assert toxic_fault("limit_data", "{bytes: 0}").attributes == (("bytes", 0),)
    assert toxic_fault("reset_peer", "{timeout: 50}").attributes == (("timeout", 50),)
    # reset_peer's timeout is the only optional one: 0 = reset when the next data passes.
    assert toxic_fault("reset_peer", "{}").attributes == (("timeout", 0),)


@pytest.mark.parametrize(
    ("ttype", "attrs", "path", "fragment"),
    [
        ("bandwidth", "{rat: 100}", "attributes.rat", "unknown key 'rat' (did you mean 'rate'?)"),
        ("reset_peer", "{timout: 500}", "attributes.timout", "did you mean 'timeout'?"),
        ("limit_data", "{byte: 10}", "attributes.byte", "did you mean 'bytes'?"),
        ("bandwidth", "{timeout: 5}", "attributes.timeout", "expected one of rate"),
        ("bandwidth", "{}", "attributes", "missing key 'rate'"),
        ("limit_data", "{}", "attributes", "missing key 'bytes'"),
        ("bandwidth", "{rate: 0}", "attributes.rate", "expected an integer >= 1, found 0"),
        ("bandwidth", "{rate: '100'}", "attributes.rate", "whole number of KB/s"),
        ("bandwidth", "{rate: 1.5}", "attributes.rate", "found 1.5"),
        ("reset_peer", "{timeout: -1}", "attributes.timeout", "expected an integer >= 0"),
        ("reset_peer", "{timeout: true}", "attributes.timeout", "whole number of ms"),
        ("limit_data", "{bytes: 1e3}", "attributes.bytes", "whole number of bytes"),
        ("limit_data", "{bytes: 9223372036854775808}", "attributes.bytes", "too large"),
        ("limit_data", "[1]", "attributes", "must be a mapping"),
    ],
)
def test_bad_toxic_attributes(ttype: str, attrs: str, path: str, fragment: str) -> None:
    err = toxic_error(ttype, attrs)
    assert err.path == f"steps[0].fault.toxic.{path}", str(err)
    assert fragment in str(err)


def test_toxic_without_attributes_needs_the_required_ones() -> None:
    text = TOXIC.replace("TYPE", "bandwidth").replace(", attributes: ATTRSEXTRA", "")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="t.yaml", check_files=False)
    assert info.value.path == "steps[0].fault.toxic.attributes"
    assert "missing key 'rate'" in str(info.value)
    text = TOXIC.replace("TYPE", "reset_peer").replace(", attributes: ATTRSEXTRA", "")
    step = parse_scenario(text, file="t.yaml", check_files=False).steps[0]
    assert isinstance(step, FaultStep)
    assert step.fault == ToxicFault(
        type="reset_peer", attributes=(("timeout", 0),), link="EE.ss1--FI.ss1"
    )


def test_limit_data_stream_is_kept() -> None:
    # stream: both (the default) means both directions, as for every other toxic.
    assert toxic_fault("limit_data", "{bytes: 10}").stream == "both"
    assert toxic_fault("limit_data", "{bytes: 10}", ", stream: upstream").stream == "upstream"


@pytest.mark.parametrize(
    ("checks", "path"),
    [
        ("[steady_state, steady_state]", "checks[1]"),
        ("[no_lost_messages, {steady_state: {window: 20s}}, steady_state]", "checks[2]"),
    ],
)
def test_duplicate_check_is_a_load_error(tmp_path: Path, checks: str, path: str) -> None:
    old = "checks: [no_lost_messages, {steady_state: {window: 20s}}, no_central_broker]"
    err = error_of(tmp_path, old, f"checks: {checks}")
    text = str(err)
    assert err.path == path
    assert "check 'steady_state' listed twice (first at checks[" in text
    assert "expected each check once" in text
    assert text.startswith(f"{tmp_path / 's.yaml'}:")
    assert "\n" not in text
