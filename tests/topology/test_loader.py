"""Instance definition schema: the shipped files load; each kind of mistake gets one error
naming the file, the YAML path and what was expected."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from federation.errors import ConfigError
from federation.identifiers import ClientId, ServiceId
from federation.topology import (
    federation_links,
    load_instance,
    load_instances,
    parse_instance,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [ROOT / "instances" / f"{n}.yaml" for n in ("ee", "fi", "lv")]

BASE: dict[str, Any] = {
    "instance": "FI",
    "member_classes": ["GOV", "COM"],
    "federation": {"trusts": ["EE"]},
    "members": [
        {"id": "GOV/0245437-2", "name": "Tax", "subsystems": [{"code": "tax"}, "portal"]},
        {"id": "COM/2908552-1", "name": "Bank", "subsystems": ["kyc"]},
    ],
    "security_servers": [
        {"code": "fi-ss1", "owner": "GOV/0245437-2", "clients": ["GOV/0245437-2/tax"]},
        {"code": "fi-ss2", "owner": "COM/2908552-1", "clients": ["COM/2908552-1/kyc"]},
    ],
    "services": [
        {
            "provider": "GOV/0245437-2/tax",
            "code": "income",
            "endpoints": [{"method": "GET", "path": "/persons/{id}/income"}],
            "backend": "tax-register",
        }
    ],
    "access": [
        {
            "service": "GOV/0245437-2/tax/income",
            "clients": ["EE/GOV/70000001/consumer", "FI/COM/2908552-1/kyc"],
        }
    ],
}


def _err(mutate: Any) -> ConfigError:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_instance(data, file="fi.yaml")
    return info.value


def test_shipped_instances_load_and_cross_check() -> None:
    ee, fi, lv = load_instances(SHIPPED)
    assert (ee.instance, fi.instance, lv.instance) == ("EE", "FI", "LV")
    for d in (ee, fi, lv):
        assert len(d.members) >= 2
        assert len(d.security_servers) == 2
        assert len(d.services) >= 3
        assert any(s.backend == "echo" for s in d.services)
    income = ServiceId.parse("FI/GOV/0245437-2/tax/income")
    assert ClientId.parse("EE/GOV/70000001/consumer") in fi.allowed_clients(income)
    person = ServiceId.parse("EE/GOV/70000001/rr/person")
    assert ClientId.parse("FI/COM/2908552-1/kyc") in ee.allowed_clients(person)
    # asymmetric partner lists
    assert set(federation_links([ee, fi, lv])) == {
        ("EE", "FI"),
        ("EE", "LV"),
        ("FI", "EE"),
        ("LV", "EE"),
    }
    ss2 = ee.security_server("ee-ss2")
    assert ss2 is not None
    assert not ss2.allowed_federations.admits("LV")
    ss1 = ee.security_server("ee-ss1")
    assert ss1 is not None
    assert ss1.allowed_federations.admits("LV")
    assert fi.timers.conf_expire_s == 600.0


def test_valid_base_and_defaults() -> None:
    d = parse_instance(copy.deepcopy(BASE), file="fi.yaml")
    assert d.security_servers[0].allowed_federations.admits("EE")
    assert d.member(ClientId.parse("FI/GOV/0245437-2/portal")) is not None
    assert d.time_scale == 1.0
    assert d.timers.conf_update_s == 60.0


def test_time_scale_divides_timers() -> None:
    data = copy.deepcopy(BASE)
    data["time_scale"] = 60
    data["settings"] = {"conf_expire_s": 600}
    d = parse_instance(data, file="fi.yaml")
    assert d.scaled_timers.conf_expire_s == pytest.approx(10.0)
    assert d.scaled_timers.ocsp_freshness_s == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda d: d.update(colour="blue"), "colour", "unknown key"),
        (lambda d: d["members"][0].update(nmae="x"), "members[0].nmae", "unknown key"),
        (lambda d: d.pop("members"), None, "missing required key 'members'"),
        (lambda d: d["members"][1].pop("name"), "members[1]", "missing required key 'name'"),
        (lambda d: d.update(member_classes="GOV"), "member_classes", "expected a list"),
        (
            lambda d: d["members"][0].update(name=5),
            "members[0].name",
            "expected a non-empty string",
        ),
        (lambda d: d.update(time_scale="fast"), "time_scale", "expected a number"),
        (lambda d: d.update(time_scale=0), "time_scale", "> 0"),
        (lambda d: d.update(instance="F" * 33), "instance", "at most 32 characters"),
        (
            lambda d: d["members"][1].update(id="COM/" + "2" * 65),
            "members[1].id",
            "member code too long",
        ),
        (
            lambda d: d["security_servers"][1].update(code="s" * 65),
            "security_servers[1].code",
            "server code too long",
        ),
        (lambda d: d.update(time_scale=float("nan")), "time_scale", "finite number, found nan"),
        (lambda d: d.update(time_scale=float("inf")), "time_scale", "finite number, found inf"),
        (lambda d: d.update(time_scale=10**400), "time_scale", "found a 401-digit one"),
        (lambda d: d.update(time_scale=1e300), "time_scale", "<= 1e+09, found 1e+300"),
        (
            lambda d: d.update(time_scale=1e-9),
            "time_scale",
            "stretches settings.conf_expire_s to 6e+11 s, expected at most 1e+09 s",
        ),
        (
            lambda d: d.update(settings={"conf_update_s": float("-inf")}),
            "settings.conf_update_s",
            "finite number, found -inf",
        ),
        (
            lambda d: d.update(settings={"ocsp_validity_s": 7 * 10**399}),
            "settings.ocsp_validity_s",
            "found a 400-digit one",
        ),
        (
            lambda d: d["security_servers"][0].update(allowed_federations=["fi"]),
            "security_servers[0].allowed_federations[0]",
            "cannot federate with its own instance",
        ),
        (
            lambda d: d["members"][0].update(id="EDU/0245437-2"),
            "members[0].id",
            "member class 'EDU' is not declared",
        ),
        (
            lambda d: d["members"][0].update(id="GOV/0245437-2/tax"),
            "members[0].id",
            "wrong identifier shape",
        ),
        (
            lambda d: d["security_servers"][1]["clients"].append("COM/2908552-1/nope"),
            "security_servers[1].clients[1]",
            "unknown subsystem FI/COM/2908552-1/nope",
        ),
        (
            lambda d: d["security_servers"][0].update(owner="GOV/9999999-9"),
            "security_servers[0].owner",
            "unknown member",
        ),
        (
            lambda d: d["security_servers"][1].update(code="fi-ss1"),
            "security_servers[1].code",
            "duplicate",
        ),
        (
            lambda d: d["security_servers"][0].update(allowed_federations="some"),
            "security_servers[0].allowed_federations",
            "'all' or 'none'",
        ),
        (
            lambda d: d["services"][0].update(provider="GOV/0245437-2/portal"),
            "services[0].provider",
            "not a client of any security server",
        ),
        (
            lambda d: d["services"][0]["endpoints"][0].update(method="FETCH"),
            "services[0].endpoints[0].method",
            "invalid HTTP method",
        ),
        (
            lambda d: d["services"][0]["endpoints"][0].update(path="persons"),
            "services[0].endpoints[0].path",
            "invalid endpoint path",
        ),
        (
            lambda d: d["services"][0].update(backend="mainframe"),
            "services[0].backend",
            "unknown backend",
        ),
        (
            lambda d: d["access"][0].update(service="GOV/0245437-2/tax/outcome"),
            "access[0].service",
            "unknown service",
        ),
        (
            lambda d: d["access"][0]["clients"].append("EE/GOV"),
            "access[0].clients[2]",
            "invalid client identifier",
        ),
        (
            lambda d: d["access"][0]["clients"].append("LV/GOV/40003345734/vehicles"),
            "access[0].clients[2]",
            "neither FI nor a trusted partner",
        ),
        (
            lambda d: d["access"][0]["clients"].append("FI/COM/2908552-1/gone"),
            "access[0].clients[2]",
            "unknown client",
        ),
        (lambda d: d["federation"].update(trusts=["FI"]), "federation.trusts[0]", "itself"),
        (
            lambda d: d.update(settings={"conf_expire_secs": 5}),
            "settings.conf_expire_secs",
            "unknown key",
        ),
        (
            lambda d: d.update(settings={"conf_generation_s": 900}),
            "settings.conf_generation_s",
            "shorter than conf_expire_s",
        ),
    ],
)
def test_each_mistake_names_file_path_and_expectation(
    mutate: Any, path: str | None, words: str
) -> None:
    err = _err(mutate)
    assert err.file == "fi.yaml"
    assert err.path == path
    text = str(err)
    assert text.startswith("fi.yaml")
    assert words in text
    if path:
        assert f"fi.yaml: {path}: " in text


def test_unknown_key_lists_allowed_keys() -> None:
    err = _err(lambda d: d["security_servers"][0].update(clinets=[]))
    assert err.expected is not None
    assert "clients" in err.expected
    assert err.found == "clinets"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_yaml_syntax_error_duplicate_key_and_missing_file(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.yaml", "instance: FI\nmembers: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML: line \d+"):
        load_instance(bad)
    dup = _write(tmp_path, "dup.yaml", "instance: FI\ninstance: EE\n")
    with pytest.raises(ConfigError, match="duplicate key 'instance'"):
        load_instance(dup)
    with pytest.raises(ConfigError, match="cannot read instance file"):
        load_instance(tmp_path / "absent.yaml")
    top = _write(tmp_path, "list.yaml", "- a\n")
    with pytest.raises(ConfigError, match="expected a mapping, found a list"):
        load_instance(top)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("? [a, b]\n: 1\n", "line 1, column 3: a mapping key must be a string (expected a "
         "string, found a list)"),
        ("instance: FI\n? {a: 1}\n: x\n", "line 2, column 3: a mapping key must be a string"),
        ("time_scale: " + "9" * 5000 + "\n", "line 1, column 13: cannot read '999"),
        ("instance: 2024-13-45\n", "line 1, column 11: cannot read '2024-13-45': month must"),
    ],
)  # fmt: skip
def test_yaml_that_pyyaml_cannot_construct(tmp_path: Path, text: str, words: str) -> None:
    p = _write(tmp_path, "odd.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_instance(p)
    message = str(info.value)
    assert message.startswith(f"{p}: invalid YAML: ")
    assert words in message
    assert "\n" not in message
    assert "9" * 100 not in message


def test_allowed_federations_compare_case_insensitively() -> None:
    """X-Road documents ``allowed-federations=fi,fi-test`` in lower case."""
    data = copy.deepcopy(BASE)
    data["security_servers"][0]["allowed_federations"] = ["ee", "EE", "lv-test"]
    allowed = parse_instance(data, file="fi.yaml").security_servers[0].allowed_federations
    assert allowed.instances == ("ee", "lv-test")
    assert allowed.admits("EE")
    assert allowed.admits("LV-TEST")
    assert allowed.admits("ee")
    assert not allowed.admits("LV")


def test_norway_is_not_false(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["instance"] = "NO"
    data["access"][0]["clients"] = ["NO/COM/2908552-1/kyc"]
    p = _write(tmp_path, "no.yaml", yaml.safe_dump(data).replace("'NO'", "NO"))
    assert "NO\n" in p.read_text() or "NO/" in p.read_text()
    assert load_instance(p).instance == "NO"


def test_cross_file_checks(tmp_path: Path) -> None:
    fi = _write(tmp_path, "fi.yaml", yaml.safe_dump(BASE))
    with pytest.raises(ConfigError, match="also defined in") as info:
        load_instances([fi, fi])
    assert info.value.path == "instance"
    ee_data = {
        "instance": "EE",
        "member_classes": ["GOV"],
        "members": [{"id": "GOV/70000001", "name": "Pop", "subsystems": ["rr"]}],
        "security_servers": [{"code": "ee-ss1", "owner": "GOV/70000001"}],
    }
    ee = _write(tmp_path, "ee.yaml", yaml.safe_dump(ee_data))
    with pytest.raises(ConfigError) as info:
        load_instances([fi, ee])
    assert info.value.path == "access[0].clients[0]"
    assert "EE/GOV/70000001/consumer" in str(info.value)
    ee_data["members"][0]["subsystems"].append("consumer")
    ee.write_text(yaml.safe_dump(ee_data))
    assert [d.instance for d in load_instances([fi, ee])] == ["FI", "EE"]
