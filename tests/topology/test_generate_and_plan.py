"""Run planning, generated instances and the CLI's handling of bad input (no servers)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from federation.cli import main
from federation.topology import load_instances
from federation.topology._generate import generate_instances, write_instances
from federation.topology._runtime import StartupError, expected_instances, make_plan, plan_links

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = [ROOT / "instances" / f for f in ("ee.yaml", "fi.yaml", "lv.yaml")]


@pytest.mark.parametrize("topology", ["mesh", "hub"])
def test_generated_instances_validate(tmp_path: Path, topology: str) -> None:
    paths = write_instances(10, topology, tmp_path)
    defs = load_instances(paths)
    assert len(defs) == 10
    assert all(len(d.security_servers) == 2 for d in defs)
    hub = defs[0]
    if topology == "hub":
        assert set(hub.trusts) == {d.instance for d in defs[1:]}
        assert all(d.trusts == (hub.instance,) for d in defs[1:])
    else:
        assert all(len(d.trusts) == 9 for d in defs)


def test_generate_rejects_bad_input() -> None:
    from federation.errors import ConfigError

    with pytest.raises(ConfigError):
        generate_instances(0)
    with pytest.raises(ConfigError):
        generate_instances(3, "ring")


def test_plan_links_cover_every_boundary(tmp_path: Path) -> None:
    plan = make_plan(INSTANCES, tmp_path / "run", time_scale=60)
    links = plan_links(plan)
    kinds = {v["kind"] for v in links.values()}
    assert kinds == {"ss-ss", "ss-cs", "ss-ocsp", "ss-tsa", "cs-cs"}
    # every security server reaches its own CS, OCSP and TSA through a link
    for d in plan.instances:
        for ss in d.security_servers:
            me = f"{d.instance}.{ss.code}"
            for target in ("cs", "ocsp", "tsa"):
                assert f"{me}--{d.instance}.{target}" in links
    # FI does not trust LV: no FI central server link to LV, and no FI server downloads LV
    assert "FI.cs--LV.cs" not in links
    assert not any(k.startswith("FI.") and k.endswith("--LV.cs") for k in links)
    # ee-ss2 only allows FI
    assert "EE.ee-ss2--FI.cs" in links
    assert "EE.ee-ss2--LV.cs" not in links
    assert "EE.cs--FI.cs" in links
    assert "EE.cs--LV.cs" in links


def test_expected_configuration_follows_allowed_federations(tmp_path: Path) -> None:
    plan = make_plan(INSTANCES, tmp_path / "run", time_scale=60)
    want = expected_instances(plan)
    assert want["EE/GOV/70000001/ee-ss1"] == {"EE", "FI", "LV"}
    assert want["EE/GOV/74000091/ee-ss2"] == {"EE", "FI"}
    assert want["LV/GOV/40003345734/lv-ss1"] == {"LV", "EE"}
    assert all("LV" not in v for k, v in want.items() if k.startswith("FI/"))


def test_time_scale_applies_to_every_instance(tmp_path: Path) -> None:
    plan = make_plan(INSTANCES, tmp_path / "run", time_scale=60)
    assert {d.scaled_timers.conf_expire_s for d in plan.instances} == {10.0}


def test_mixed_time_scales_are_refused(tmp_path: Path) -> None:
    fast = tmp_path / "fast.yaml"
    fast.write_text(
        (ROOT / "instances" / "fi.yaml").read_text().replace("time_scale: 1", "time_scale: 10")
    )
    if "time_scale: 10" not in fast.read_text():
        fast.write_text(fast.read_text() + "\ntime_scale: 10\n")
    with pytest.raises(StartupError, match="different time_scale"):
        make_plan([INSTANCES[0], fast], tmp_path / "run")


def test_cli_bad_instance_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "instance: EE\nmember_classes: [GOV]\nmembers: []\nsecurity_servers: []\nbogus: 1\n"
    )
    code = main(["up", str(bad), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "bad.yaml" in err
    assert "bogus" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["request", "--run-dir", str(tmp_path), "--client", "EE/GOV/1/x", "FI/GOV/2/y/z"])
    assert code == 2
    assert "manifest.json" in capsys.readouterr().err


def test_cli_request_to_a_stopped_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a run directory whose `xfed up` has stopped: its client proxy port is closed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = "EE/GOV/70000001/consumer"
    manifest = {
        "instances": {
            "EE": {
                "security_servers": {
                    "EE/GOV/70000001/ee-ss1": {
                        "client_url": f"http://127.0.0.1:{port}",
                        "clients": [client],
                    }
                }
            }
        }
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    code = main(["request", "--run-dir", str(tmp_path), "--client", client, "FI/GOV/2/y/z"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"cannot reach the client proxy http://127.0.0.1:{port}" in err
    assert "still running?" in err
