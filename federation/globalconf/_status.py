"""``xfed status``: what every security server holds and what every central server trusts.

Read from the files the components write under a run directory (docs/globalconf.md):

* ``<run_dir>/<INST>/ss/<server code>/globalconf/status.json`` (configuration client)
* ``<run_dir>/<INST>/cs/status.json`` (central server)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from federation.clock import iso, parse_iso


def conf_client_dir(run_dir: str | os.PathLike[str], instance: str, server_code: str) -> Path:
    """Where a security server's configuration client keeps its copies and status."""
    return Path(run_dir) / instance / "ss" / server_code / "globalconf"


def central_dir(run_dir: str | os.PathLike[str], instance: str) -> Path:
    """Where a central server writes its anchors and status."""
    return Path(run_dir) / instance / "cs"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def collect_status(run_dir: str | os.PathLike[str], *, now: float | None = None) -> dict[str, Any]:
    """``{"security_servers": {id: {"globalconf": {INST: {...}}}}, "central_servers": {...}}``.

    With ``now``, each configuration's ``expired`` is recomputed at that time (the files
    say what was true when written).
    """
    root = Path(run_dir)
    servers: dict[str, Any] = {}
    for path in sorted(root.glob("*/ss/*/globalconf/status.json")):
        st = _read(path)
        if st is None:
            continue
        sid = st.get("security_server") or f"{path.parts[-5]}/{path.parts[-3]}"
        confs = st.get("globalconf") or {}
        if now is not None:
            for c in confs.values():
                exp = c.get("expires")
                c["expired"] = exp is None or now >= parse_iso(exp)
            own = confs.get(st.get("instance"), {})
            st["outdated"] = own.get("expired", True)
        servers[sid] = {
            "instance": st.get("instance"),
            "outdated": st.get("outdated"),
            "status_at": st.get("at"),
            "globalconf": confs,
        }
    centrals: dict[str, Any] = {}
    for path in sorted(root.glob("*/cs/status.json")):
        st = _read(path)
        if st is None:
            continue
        centrals[st.get("instance") or path.parts[-3]] = st
    out: dict[str, Any] = {"security_servers": servers, "central_servers": centrals}
    if now is not None:
        out["at"] = iso(now)
    return out


def render_status(status: dict[str, Any]) -> str:
    """A human-readable table of :func:`collect_status` output."""
    lines: list[str] = []
    centrals = status.get("central_servers", {})
    if centrals:
        lines.append("Central servers")
        for inst, cs in sorted(centrals.items()):
            anchors = ", ".join(a.get("instance", "?") for a in cs.get("trusted_anchors", []))
            lines.append(
                f"  {inst:<8} {cs.get('public_url', '')}  serial {cs.get('serial')}  "
                f"expires {cs.get('expires')}  trusts: {anchors or '-'}"
            )
    servers = status.get("security_servers", {})
    if servers:
        if lines:
            lines.append("")
        lines.append("Security servers")
        for sid, ss in sorted(servers.items()):
            flag = "  OUTDATED" if ss.get("outdated") else ""
            lines.append(f"  {sid}{flag}")
            for inst, c in ss.get("globalconf", {}).items():
                state = "verified" if c.get("verified") else "not verified"
                if c.get("verified") and c.get("expired"):
                    state = "expired"
                err = f"  last error: {c['last_error']}" if c.get("last_error") else ""
                lines.append(
                    f"    {inst:<8} {c.get('kind', ''):<8} {state:<12} expires {c.get('expires')}"
                    f"  downloaded {c.get('downloaded_at')}{err}"
                )
    if not lines:
        return "no central or security servers found in the run directory\n"
    return "\n".join(lines) + "\n"
