"""Reading a run directory: the manifest's message logs, CA material and configuration
copies (read-only; safe while the run is live)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.errors import ConfigError
from federation.pki import load_certs_pem
from federation.securityserver._messagelog import MessageLogError

LOG_DAMAGED = (MessageLogError, sqlite3.Error)
"""What opening or reading a damaged message log raises (not SQLite, truncated, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRef:
    """One security server's message log as the manifest names it."""

    server: str
    instance: str
    path: Path
    globalconf_dir: Path | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    run_dir: Path
    manifest: dict[str, Any]
    logs: tuple[LogRef, ...]

    def instances(self) -> list[str]:
        return list(self.manifest.get("instances", {}))

    def instance(self, inst: str) -> dict[str, Any]:
        obj = self.manifest.get("instances", {}).get(inst)
        return obj if isinstance(obj, dict) else {}


def load_run(run_dir: str | Path) -> RunInfo:
    """The run's ``manifest.json`` and every message log it names (ConfigError when the
    directory has no readable manifest)."""
    rd = Path(run_dir)
    path = rd / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            "no manifest.json: not a run directory (start one with xfed up)", file=str(rd)
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the run manifest: {exc}", file=str(path)) from None
    instances = manifest.get("instances") if isinstance(manifest, dict) else None
    if not isinstance(instances, dict):
        raise ConfigError("manifest has no instances", file=str(path), path="instances")
    logs: list[LogRef] = []
    for inst, obj in instances.items():
        servers = obj.get("security_servers", {}) if isinstance(obj, dict) else {}
        for sid, ss in servers.items():
            if not isinstance(ss, dict) or "message_log" not in ss:
                continue
            gc = ss.get("globalconf_dir")
            logs.append(
                LogRef(
                    server=str(sid),
                    instance=str(inst),
                    path=_resolve(rd, ss["message_log"]),
                    globalconf_dir=_resolve(rd, gc) if gc else None,
                )
            )
    return RunInfo(run_dir=rd, manifest=manifest, logs=tuple(logs))


def unreadable(ref: LogRef, exc: Exception) -> str:
    """One line naming the damaged log of ``ref`` and what is wrong with it."""
    text = str(exc)
    return text if str(ref.path) in text else f"cannot read the message log {ref.path}: {text}"


def _resolve(run_dir: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else run_dir / q


def read_certs(path: str | Path | None) -> list[Any]:
    if not path:
        return []
    try:
        return load_certs_pem(Path(path).read_bytes())
    except OSError:
        return []


CONF_FILES = ("directory.bin", "directory.json", "shared-parameters.json")


def conf_copies(run: RunInfo, instances: set[str]) -> dict[str, bytes]:
    """Verified configuration copies of ``instances`` held by the run's security servers:
    ``<INST>/<kind>/<file>``, at most one per (instance, kind). Private parameters are
    never copied."""
    out: dict[str, bytes] = {}
    for ref in run.logs:
        if ref.globalconf_dir is None:
            continue
        for inst in sorted(instances):
            d = ref.globalconf_dir / inst
            try:
                meta = json.loads((d / "directory.json").read_text())
                files = {name: (d / name).read_bytes() for name in CONF_FILES}
            except (OSError, ValueError):
                continue
            kind = str(meta.get("kind") or "internal")
            if kind not in ("internal", "external") or f"{inst}/{kind}/directory.bin" in out:
                continue
            for name, data in files.items():
                out[f"{inst}/{kind}/{name}"] = data
    return out
