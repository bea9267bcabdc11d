"""Scenario YAML -> :class:`~federation.scenario._model.Scenario`, with precise errors.

Every mistake raises one :class:`~federation.errors.ScenarioError` whose text names the
file and line, the YAML path (``steps[3].fault.latency.ms``) and what was expected, e.g.::

    scenarios/x.yaml:14: steps[3].fault.latency.ms: must be a whole number of
    milliseconds (expected an integer >= 0, found '20ms')

Unknown keys are errors (with a "did you mean" hint); so are duplicate keys. Field by field
documentation: ``docs/scenarios.md``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

from federation.errors import ScenarioError
from federation.identifiers import ClientId, IdentifierError, ServiceId
from federation.scenario._model import (
    CHECK_NAMES,
    CallSpec,
    CheckSpec,
    ExpectStep,
    FaultSpec,
    FaultStep,
    Filter,
    HealStep,
    LatencyFault,
    LoadSpec,
    PartitionFault,
    RequestStep,
    RevokeFault,
    Scenario,
    Step,
    ToxicFault,
    WaitStep,
    WaitUntilStep,
)
from federation.settings import TIMER_NAMES

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|m|min)\s*$")
_INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)?$")
_FAULT_KINDS = ("latency", "partition", "revoke", "toxic")
_TOXIC_TYPES = ("bandwidth", "reset_peer", "limit_data")  # latency has its own fault kind
# Toxic type -> attribute -> (default or None when required, minimum, unit). The chaos
# server fills a missing attribute with 0 (Toxiproxy's Go zero value), which for these
# means "reset now", "cut at once" or "refused at run time", so only reset_peer's timeout,
# where 0 is the natural reading ("reset when the next data passes"), has a default.
_TOXIC_ATTRIBUTES: dict[str, dict[str, tuple[int | None, int, str]]] = {
    "bandwidth": {"rate": (None, 1, "KB/s")},
    "reset_peer": {"timeout": (0, 0, "ms")},
    "limit_data": {"bytes": (None, 0, "bytes")},
}
_INT64_MAX = 2**63 - 1
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def parse_duration(text: object) -> float:
    """``30s``, ``500ms``, ``2m``, ``1h``, ``1m30s`` -> seconds. Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    s = text.strip().replace(" ", "")
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            raise ValueError(text)
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or pos != len(s):
        raise ValueError(text)
    return total


def parse_rate(value: object) -> float:
    """``50/s``, ``600/m`` or a plain number (per second) -> requests per second."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _RATE.match(value)
        if m:
            n = float(m.group(1))
            return n if m.group(2) in ("s", "sec") else n / 60.0
    raise ValueError(value)


class _Ctx:
    """Where we are: the file and a map from YAML path to line number."""

    def __init__(self, file: str, lines: Mapping[str, int]) -> None:
        self.file = file
        self.lines = lines

    def fail(
        self, path: str, message: str, expected: str | None = None, found: object = None
    ) -> NoReturn:
        line = self._line(path)
        where = f"{self.file}:{line}" if line else self.file
        err = ScenarioError(message, file=where, path=path or None, expected=expected, found=found)
        err.line = line  # type: ignore[attr-defined]
        raise err

    def _line(self, path: str) -> int | None:
        p = path
        while p:
            if p in self.lines:
                return self.lines[p]
            cut = max(p.rfind("."), p.rfind("["))
            p = p[:cut] if cut > 0 else ""
        return self.lines.get("")

    # ---- typed getters ------------------------------------------------------------
    def mapping(
        self, value: object, path: str, *, required: tuple[str, ...] = (), allowed: tuple[str, ...]
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, "must be a mapping", f"keys {', '.join(allowed)}", _show(value))
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                msg = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                self.fail(_join(path, str(key)), msg, "one of " + ", ".join(allowed))
        for key in required:
            if key not in value:
                self.fail(path, f"missing key {key!r}", "keys " + ", ".join(required))
        return value

    def string(self, value: object, path: str, what: str = "a string") -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, f"must be {what}", what, _show(value))
        return value.strip()

    def duration(self, value: object, path: str, *, allow_zero: bool = False) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.fail(path, "bad duration", "a duration like 30s, 500ms, 2m or 1m30s", value)
        if seconds < 0 or (seconds == 0 and not allow_zero):
            self.fail(path, "duration must be positive", "a duration > 0", value)
        return seconds

    def integer(self, value: object, path: str, *, minimum: int = 0, what: str = "") -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(path, what or "bad number", f"an integer >= {minimum}", _show(value))
        return value

    def number(
        self, value: object, path: str, *, minimum: float = 0.0, strict: bool = False
    ) -> float:
        bad = isinstance(value, bool) or not isinstance(value, int | float)
        bad = bad or not math.isfinite(value)  # type: ignore[arg-type]  # .nan, .inf
        if bad or value < minimum or (strict and value == minimum):  # type: ignore[operator]
            op = ">" if strict else ">="
            bound = f"a number {op} {minimum:g}" if math.isfinite(minimum) else "a number"
            self.fail(path, "bad number", f"a finite {bound[2:]}", _show(value))
        return float(value)  # type: ignore[arg-type]

    def fraction(self, value: object, path: str) -> float:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                value = float(value.strip()[:-1]) / 100.0
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            self.fail(path, "bad error rate", "a fraction 0..1 or a percentage like 5%", value)
        return float(value)

    def strings(self, value: object, path: str, what: str = "a list of strings") -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.fail(path, "must be a list", what, _show(value))
        return tuple(self.string(v, f"{path}[{i}]") for i, v in enumerate(value))

    def client_id(self, value: object, path: str) -> str:
        text = self.string(value, path, "a client identifier")
        try:
            ClientId.parse(text)
        except IdentifierError as exc:
            self.fail(path, str(exc), "INSTANCE/CLASS/CODE/SUBSYSTEM", text)
        return text

    def service_id(self, value: object, path: str) -> str:
        text = self.string(value, path, "a service identifier")
        try:
            ServiceId.parse(text)
        except IdentifierError as exc:
            self.fail(path, str(exc), "INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE", text)
        return text

    def instance(self, value: object, path: str) -> str:
        text = self.string(value, path, "an instance code")
        if not _INSTANCE.match(text):
            self.fail(path, "bad instance code", "an instance code like EE or FI", text)
        return text

    def component(self, value: object, path: str) -> str:
        text = self.string(value, path, "a component")
        if not _COMPONENT.match(text):
            self.fail(path, "bad component", "FI, FI.cs, FI.ocsp, FI.tsa or FI.<server code>", text)
        return text


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: object) -> object:
    if isinstance(value, dict | list):
        return type(value).__name__
    return value


def _line_map(text: str) -> dict[str, int]:
    """YAML path -> 1-based line; raises ValueError(path) on a duplicate key."""
    out: dict[str, int] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return out

    def walk(node: yaml.Node, path: str) -> None:
        out.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                key = str(k.value)
                child = _join(path, key)
                if key in seen:
                    raise _DuplicateKey(child, k.start_mark.line + 1)
                seen.add(key)
                out[child] = k.start_mark.line + 1
                walk(v, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, f"{path}[{i}]")

    walk(root, "")
    return out


class _DuplicateKey(Exception):
    def __init__(self, path: str, line: int) -> None:
        self.path = path
        self.line = line


# ---------------------------------------------------------------------------- public


def load_scenario(path: str | Path, *, check_files: bool = True) -> Scenario:
    """Read and validate a scenario file. Raises ScenarioError (one clear message)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario: {exc.strerror or exc}", file=str(p)) from None
    return parse_scenario(text, file=p, check_files=check_files)


def parse_scenario(text: str, *, file: str | Path, check_files: bool = True) -> Scenario:
    """Validate scenario YAML ``text``; ``file`` names it in errors and anchors relative
    instance paths."""
    fpath = Path(file)
    try:
        lines = _line_map(text)
        data = yaml.safe_load(text)
    except _DuplicateKey as dup:
        raise ScenarioError(
            "duplicate key", file=f"{fpath}:{dup.line}", path=dup.path, expected="each key once"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{fpath}:{mark.line + 1}" if mark is not None else str(fpath)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"not valid YAML: {problem}", file=where) from None
    ctx = _Ctx(str(fpath), lines)
    return _scenario(ctx, data, fpath, check_files)


def _scenario(ctx: _Ctx, data: object, fpath: Path, check_files: bool) -> Scenario:
    top = ctx.mapping(
        data,
        "",
        required=("name", "instances"),
        allowed=(
            "name",
            "description",
            "instances",
            "seed",
            "time_scale",
            "settings",
            "load",
            "steps",
            "checks",
        ),
    )
    name = ctx.string(top["name"], "name")
    description = top.get("description", "")
    if not isinstance(description, str):
        ctx.fail("description", "must be text", "a string", _show(description))
    inst_list = top["instances"]
    if not isinstance(inst_list, list) or not inst_list:
        ctx.fail(
            "instances", "must be a list", "a non-empty list of instance files", _show(inst_list)
        )
    instances: list[Path] = []
    for i, item in enumerate(inst_list):
        rel = ctx.string(item, f"instances[{i}]", "a path to an instance YAML file")
        ip = (fpath.parent / rel).resolve() if not Path(rel).is_absolute() else Path(rel)
        if check_files and not ip.is_file():
            ctx.fail(
                f"instances[{i}]",
                f"instance file {str(ip)!r} does not exist",
                "an existing file",
                rel,
            )
        instances.append(ip)
    seed = ctx.integer(top.get("seed", 0), "seed", minimum=0, what="bad seed")
    time_scale = ctx.number(top.get("time_scale", 1), "time_scale", minimum=0, strict=True)
    settings: list[tuple[str, float]] = []
    if "settings" in top:
        smap = ctx.mapping(top["settings"], "settings", allowed=TIMER_NAMES)
        for key, value in smap.items():
            settings.append((key, ctx.number(value, f"settings.{key}", minimum=0, strict=True)))
    load = _load(ctx, top["load"]) if top.get("load") is not None else None
    steps_raw = top.get("steps", [])
    if not isinstance(steps_raw, list):
        ctx.fail("steps", "must be a list", "a list of steps", _show(steps_raw))
    steps = [_step(ctx, s, i) for i, s in enumerate(steps_raw)]
    _check_fault_names(ctx, steps)
    _check_vs(ctx, steps)
    checks_raw = top.get("checks", [])
    if not isinstance(checks_raw, list):
        ctx.fail("checks", "must be a list", "a list of check names", _show(checks_raw))
    checks = [_check(ctx, c, i) for i, c in enumerate(checks_raw)]
    _check_unique(ctx, checks)
    return Scenario(
        name=name,
        description=description.strip(),
        file=fpath,
        instances=tuple(instances),
        seed=seed,
        time_scale=time_scale,
        settings=tuple(settings),
        load=load,
        steps=tuple(steps),
        checks=tuple(checks),
        raw=data,
    )


_CALL_KEYS = ("client", "service", "path", "url", "method", "body_bytes", "weight", "via")


def _call(ctx: _Ctx, m: dict[str, Any], path: str, *, allow_weight: bool = True) -> CallSpec:
    client = ctx.client_id(m.get("client"), _join(path, "client"))
    service = url = None
    if "url" in m:
        if "service" in m:
            ctx.fail(_join(path, "url"), "give either service (+ path) or url", "one of them")
        url = ctx.string(m["url"], _join(path, "url"))
        if not url.startswith("/"):
            ctx.fail(
                _join(path, "url"),
                "must start with /",
                "a path on the client's security server such as /listClients",
                url,
            )
    else:
        if "service" not in m:
            ctx.fail(path, "missing key 'service'", "service (and path), or url")
        service = ctx.service_id(m["service"], _join(path, "service"))
    call_path = ""
    if "path" in m:
        call_path = ctx.string(m["path"], _join(path, "path"))
        if not call_path.startswith("/"):
            ctx.fail(
                _join(path, "path"),
                "must start with /",
                "a path such as /persons/1/income",
                call_path,
            )
    method = ctx.string(m.get("method", "GET"), _join(path, "method")).upper()
    if method not in _METHODS:
        ctx.fail(
            _join(path, "method"), "unknown HTTP method", "one of " + ", ".join(_METHODS), method
        )
    body_bytes = ctx.integer(
        m.get("body_bytes", 0), _join(path, "body_bytes"), what="bad body size"
    )
    weight = 1.0
    if allow_weight and "weight" in m:
        weight = ctx.number(m["weight"], _join(path, "weight"), minimum=0, strict=True)
    via = ctx.component(m["via"], _join(path, "via")) if "via" in m else None
    return CallSpec(
        client=client,
        service=service,
        path=call_path,
        url=url,
        method=method,
        body_bytes=body_bytes,
        weight=weight,
        via=via,
    )


def _load(ctx: _Ctx, value: object) -> LoadSpec:
    m = ctx.mapping(
        value,
        "load",
        required=("calls",),
        allowed=("rate", "concurrency", "calls", "workers", "timeout"),
    )
    if ("rate" in m) == ("concurrency" in m):
        ctx.fail("load", "give exactly one of rate and concurrency", "rate: 50/s or concurrency: 8")
    rate = conc = None
    if "rate" in m:
        try:
            rate = parse_rate(m["rate"])
        except ValueError:
            ctx.fail("load.rate", "bad rate", "a rate like 50/s or 600/m", m["rate"])
        if rate <= 0:
            ctx.fail("load.rate", "bad rate", "a rate > 0", m["rate"])
    else:
        conc = ctx.integer(m["concurrency"], "load.concurrency", minimum=1, what="bad concurrency")
    calls_raw = m["calls"]
    if not isinstance(calls_raw, list) or not calls_raw:
        ctx.fail(
            "load.calls",
            "must be a list",
            "a non-empty list of calls {client, service, path}",
            _show(calls_raw),
        )
    calls = []
    for i, c in enumerate(calls_raw):
        p = f"load.calls[{i}]"
        cm = ctx.mapping(c, p, required=("client",), allowed=_CALL_KEYS)
        if "url" in cm:
            ctx.fail(_join(p, "url"), "background load calls services", "service and path")
        calls.append(_call(ctx, cm, p))
    workers = ctx.integer(m.get("workers", 32), "load.workers", minimum=1, what="bad worker count")
    timeout = ctx.duration(m.get("timeout", "10s"), "load.timeout")
    return LoadSpec(
        rate=rate, concurrency=conc, calls=tuple(calls), workers=workers, timeout_real_s=timeout
    )


_STEP_KINDS = ("request", "wait", "fault", "heal", "wait_until", "expect")


def _step(ctx: _Ctx, value: object, i: int) -> Step:
    path = f"steps[{i}]"
    if not isinstance(value, dict):
        ctx.fail(
            path,
            "must be a mapping with one step kind",
            "one of " + ", ".join(_STEP_KINDS),
            _show(value),
        )
    ctx.mapping(value, path, allowed=(*_STEP_KINDS, "note"))
    kinds = [k for k in value if k in _STEP_KINDS]
    if len(kinds) != 1:
        ctx.fail(
            path,
            "a step has exactly one kind",
            "one of " + ", ".join(_STEP_KINDS),
            ", ".join(kinds) or None,
        )
    kind = kinds[0]
    note = value.get("note")
    if note is not None and not isinstance(note, str):
        ctx.fail(_join(path, "note"), "must be text", "a string", _show(note))
    base: dict[str, Any] = {"index": i, "path": path, "note": note, "raw": value}
    spec = value[kind]
    sp = _join(path, kind)
    if kind == "wait":
        return WaitStep(duration_s=ctx.duration(spec, sp, allow_zero=True), **base)
    if kind == "heal":
        if spec == "all":
            return HealStep(all=True, **base)
        return HealStep(
            names=ctx.strings(spec, sp, "all, a fault name or a list of fault names"), **base
        )
    if kind == "request":
        return _request(ctx, spec, sp, base)
    if kind == "fault":
        return _fault(ctx, spec, sp, base)
    if kind == "wait_until":
        return _wait_until(ctx, spec, sp, base)
    return _expect(ctx, spec, sp, base)


def _request(ctx: _Ctx, spec: object, sp: str, base: dict[str, Any]) -> RequestStep:
    m = ctx.mapping(
        spec,
        sp,
        required=("client",),
        allowed=(
            *[k for k in _CALL_KEYS if k != "weight"],
            "headers",
            "status",
            "error",
            "body_contains",
            "within",
        ),
    )
    call = _call(ctx, m, sp, allow_weight=False)
    headers: list[tuple[str, str]] = []
    if "headers" in m:
        hm = m["headers"]
        if not isinstance(hm, dict):
            ctx.fail(_join(sp, "headers"), "must be a mapping", "header: value pairs", _show(hm))
        for k, v in hm.items():
            headers.append((str(k), ctx.string(str(v), _join(_join(sp, "headers"), str(k)))))
    status = None
    if "status" in m:
        status = ctx.integer(m["status"], _join(sp, "status"), minimum=100, what="bad HTTP status")
    error = (
        ctx.string(m["error"], _join(sp, "error"), "an X-Road error type") if "error" in m else None
    )
    contains = (
        ctx.strings(m["body_contains"], _join(sp, "body_contains")) if "body_contains" in m else ()
    )
    within = ctx.duration(m["within"], _join(sp, "within")) if "within" in m else None
    return RequestStep(
        call=call,
        headers=tuple(headers),
        status=status,
        error=error,
        body_contains=contains,
        within_s=within,
        **base,
    )


def _between(ctx: _Ctx, value: object, path: str) -> tuple[str, str]:
    if not isinstance(value, list) or len(value) != 2:
        ctx.fail(
            path,
            "must name two instances",
            "a list of two instance codes like [EE, FI]",
            _show(value),
        )
    a = ctx.instance(value[0], f"{path}[0]")
    b = ctx.instance(value[1], f"{path}[1]")
    if a == b:
        ctx.fail(path, "the two instances must differ", "two different instance codes", value)
    return a, b


def _stream(ctx: _Ctx, m: dict[str, Any], path: str) -> str:
    s = m.get("stream", "both")
    if s not in ("both", "upstream", "downstream"):
        ctx.fail(_join(path, "stream"), "bad stream", "both, upstream or downstream", s)
    return str(s)


def _where(ctx: _Ctx, m: dict[str, Any], path: str) -> tuple[str | None, tuple[str, str] | None]:
    if ("link" in m) == ("between" in m):
        ctx.fail(
            path, "give exactly one of link and between", "link: <from>--<to> or between: [EE, FI]"
        )
    if "link" in m:
        link = ctx.string(m["link"], _join(path, "link"))
        if "--" not in link:
            ctx.fail(
                _join(path, "link"),
                "bad link name",
                "a proxy name <from>--<to> such as EE.ee-ss1--FI.fi-ss1",
                link,
            )
        return link, None
    return None, _between(ctx, m["between"], _join(path, "between"))


def _fault(ctx: _Ctx, spec: object, sp: str, base: dict[str, Any]) -> FaultStep:
    m = ctx.mapping(spec, sp, allowed=("name", *_FAULT_KINDS))
    kinds = [k for k in m if k in _FAULT_KINDS]
    if len(kinds) != 1:
        ctx.fail(
            sp,
            "a fault has exactly one kind",
            "one of " + ", ".join(_FAULT_KINDS),
            ", ".join(kinds) or None,
        )
    name = ctx.string(m["name"], _join(sp, "name"), "a fault name") if "name" in m else None
    if name is not None and (name == "all" or not re.match(r"^[A-Za-z0-9_.-]+$", name)):
        ctx.fail(
            _join(sp, "name"), "bad fault name", "letters, digits, _ . - (and not 'all')", name
        )
    kind = kinds[0]
    fp = _join(sp, kind)
    value = m[kind]
    fault: FaultSpec
    if kind == "partition":
        source = None
        if isinstance(value, dict):
            pm = ctx.mapping(value, fp, required=("of",), allowed=("of", "from"))
            if "from" in pm:
                source = ctx.component(pm["from"], _join(fp, "from"))
            value = pm["of"]
            fp = _join(fp, "of")
        fault = PartitionFault(target=ctx.component(value, fp), source=source)
    elif kind == "latency":
        lm = ctx.mapping(
            value, fp, required=("ms",), allowed=("link", "between", "ms", "jitter_ms", "stream")
        )
        link, between = _where(ctx, lm, fp)
        ms = ctx.integer(lm["ms"], _join(fp, "ms"), what="must be a whole number of milliseconds")
        jitter = ctx.integer(
            lm.get("jitter_ms", 0),
            _join(fp, "jitter_ms"),
            what="must be a whole number of milliseconds",
        )
        fault = LatencyFault(
            ms=ms, jitter_ms=jitter, link=link, between=between, stream=_stream(ctx, lm, fp)
        )
    elif kind == "toxic":
        tm = ctx.mapping(
            value,
            fp,
            required=("type",),
            allowed=("link", "between", "type", "attributes", "stream"),
        )
        link, between = _where(ctx, tm, fp)
        ttype = ctx.string(tm["type"], _join(fp, "type"))
        if ttype not in _TOXIC_TYPES:
            ctx.fail(
                _join(fp, "type"), "unknown toxic type", "one of " + ", ".join(_TOXIC_TYPES), ttype
            )
        fault = ToxicFault(
            type=ttype,
            attributes=_toxic_attributes(ctx, ttype, tm.get("attributes", {}), fp),
            link=link,
            between=between,
            stream=_stream(ctx, tm, fp),
        )
    else:
        rm = ctx.mapping(value, fp, required=("cert", "of"), allowed=("instance", "cert", "of"))
        cert = rm["cert"]
        if cert not in ("auth", "sign"):
            ctx.fail(_join(fp, "cert"), "bad certificate kind", "auth or sign", cert)
        of = ctx.string(rm["of"], _join(fp, "of"))
        if "/" in of:
            try:
                cid = ClientId.parse(of)
            except IdentifierError as exc:
                ctx.fail(
                    _join(fp, "of"),
                    str(exc),
                    "a member id FI/GOV/0245437-2 or a security server FI.fi-ss1",
                    of,
                )
            if cid.is_subsystem:
                ctx.fail(
                    _join(fp, "of"),
                    "certificates belong to members, not subsystems",
                    "a member id FI/GOV/0245437-2",
                    of,
                )
            inst = cid.instance
        else:
            comp = ctx.component(of, _join(fp, "of"))
            if "." not in comp or comp.split(".", 1)[1] in ("cs", "ocsp", "tsa"):
                ctx.fail(
                    _join(fp, "of"),
                    "not a security server",
                    "a security server FI.fi-ss1 or a member id",
                    of,
                )
            inst = comp.split(".", 1)[0]
        if "instance" in rm:
            given = ctx.instance(rm["instance"], _join(fp, "instance"))
            if given != inst:
                ctx.fail(_join(fp, "instance"), f"{of} belongs to {inst}", inst, given)
        fault = RevokeFault(instance=inst, cert=str(cert), of=of)
    return FaultStep(name=name, fault=fault, **base)


def _toxic_attributes(ctx: _Ctx, ttype: str, value: object, fp: str) -> tuple[tuple[str, int], ...]:
    """The attributes of a ``toxic`` fault, checked against its type: known names only,
    whole numbers in range, required ones present; defaults filled in."""
    spec = _TOXIC_ATTRIBUTES[ttype]
    ap = _join(fp, "attributes")
    required = tuple(k for k, (default, _, _) in spec.items() if default is None)
    am = ctx.mapping(value, ap, required=required, allowed=tuple(spec))
    out: list[tuple[str, int]] = []
    for key, (default, minimum, unit) in spec.items():
        if key not in am:
            assert default is not None
            out.append((key, default))
            continue
        kp = _join(ap, key)
        number = ctx.integer(
            am[key], kp, minimum=minimum, what=f"{ttype} {key} must be a whole number of {unit}"
        )
        if number > _INT64_MAX:
            ctx.fail(kp, f"{ttype} {key} is too large", f"an integer <= {_INT64_MAX}", number)
        out.append((key, number))
    return tuple(out)


def _filter(ctx: _Ctx, m: dict[str, Any], path: str) -> Filter:
    direction = None
    if "direction" in m:
        direction = ctx.string(m["direction"], _join(path, "direction")).replace(" ", "")
        parts = direction.split("->")
        ok = direction in ("cross", "intra") or (
            len(parts) in (1, 2) and all(_INSTANCE.match(p) for p in parts)
        )
        if not ok:
            ctx.fail(
                _join(path, "direction"),
                "bad direction",
                "EE->FI, EE (within EE), cross or intra",
                direction,
            )
    client = ctx.client_id(m["client"], _join(path, "client")) if "client" in m else None
    service = ctx.service_id(m["service"], _join(path, "service")) if "service" in m else None
    return Filter(direction=direction, client=client, service=service)


_FILTER_KEYS = ("direction", "client", "service")


def _wait_until(ctx: _Ctx, spec: object, sp: str, base: dict[str, Any]) -> WaitUntilStep:
    m = ctx.mapping(
        spec,
        sp,
        required=("within",),
        allowed=(
            "error",
            "error_rate",
            "min_error_rate",
            "within",
            "window",
            "min_requests",
            *_FILTER_KEYS,
        ),
    )
    if sum(k in m for k in ("error", "error_rate", "min_error_rate")) != 1:
        ctx.fail(
            sp,
            "give exactly one condition",
            "error: <X-Road error type>, error_rate: <at most> or min_error_rate: <at least>",
        )
    error = (
        ctx.string(m["error"], _join(sp, "error"), "an X-Road error type") if "error" in m else None
    )
    rate = ctx.fraction(m["error_rate"], _join(sp, "error_rate")) if "error_rate" in m else None
    return WaitUntilStep(
        within_s=ctx.duration(m["within"], _join(sp, "within")),
        error=error,
        error_rate=rate,
        min_error_rate=ctx.fraction(m["min_error_rate"], _join(sp, "min_error_rate"))
        if "min_error_rate" in m
        else None,
        window_s=ctx.duration(m.get("window", "10s"), _join(sp, "window")),
        min_requests=ctx.integer(
            m.get("min_requests", 10), _join(sp, "min_requests"), minimum=1, what="bad count"
        ),
        filter=_filter(ctx, m, sp),
        **base,
    )


def _expect(ctx: _Ctx, spec: object, sp: str, base: dict[str, Any]) -> ExpectStep:
    m = ctx.mapping(
        spec,
        sp,
        required=("window",),
        allowed=(
            "window",
            "error_rate",
            "min_error_rate",
            "errors_seen",
            "errors_absent",
            "p50_ms",
            "p99_ms",
            "min_p50_ms",
            "min_requests",
            "vs",
            "min_p50_rise_ms",
            "max_p50_rise_ms",
            *_FILTER_KEYS,
        ),
    )
    conds = (
        "error_rate",
        "min_error_rate",
        "errors_seen",
        "errors_absent",
        "p50_ms",
        "p99_ms",
        "min_p50_ms",
        "min_p50_rise_ms",
        "max_p50_rise_ms",
    )
    if not any(k in m for k in conds):
        ctx.fail(sp, "nothing to expect", "at least one of " + ", ".join(conds))

    def opt_ms(key: str) -> float | None:
        return ctx.number(m[key], _join(sp, key), minimum=0, strict=True) if key in m else None

    def rise_ms(key: str) -> float | None:  # a rise may be negative: a fall
        return ctx.number(m[key], _join(sp, key), minimum=-math.inf) if key in m else None

    vs = None
    if "vs" in m:
        # steps[N] (quoted inside {...}: brackets are YAML flow syntax there) or N
        raw = m["vs"]
        ref = None if isinstance(raw, bool) else re.fullmatch(r"steps\[(\d+)\]|(\d+)", str(raw))
        vs = -1 if ref is None else int(ref.group(1) or ref.group(2))
        if not 0 <= vs < base["index"]:
            ctx.fail(_join(sp, "vs"), "bad reference", "an earlier step, steps[N] or N", raw)
    elif "min_p50_rise_ms" in m or "max_p50_rise_ms" in m:
        ctx.fail(sp, "a p50 rise needs the window to compare with", "vs: steps[N]")
    min_rise, max_rise = rise_ms("min_p50_rise_ms"), rise_ms("max_p50_rise_ms")
    if min_rise is not None and max_rise is not None and min_rise > max_rise:
        ctx.fail(_join(sp, "max_p50_rise_ms"), "bad range", f"a number >= {min_rise:g}", max_rise)

    return ExpectStep(
        window_s=ctx.duration(m["window"], _join(sp, "window")),
        error_rate=ctx.fraction(m["error_rate"], _join(sp, "error_rate"))
        if "error_rate" in m
        else None,
        min_error_rate=ctx.fraction(m["min_error_rate"], _join(sp, "min_error_rate"))
        if "min_error_rate" in m
        else None,
        errors_seen=ctx.strings(m["errors_seen"], _join(sp, "errors_seen"))
        if "errors_seen" in m
        else (),
        errors_absent=ctx.strings(m["errors_absent"], _join(sp, "errors_absent"))
        if "errors_absent" in m
        else (),
        p50_ms=opt_ms("p50_ms"),
        p99_ms=opt_ms("p99_ms"),
        min_p50_ms=opt_ms("min_p50_ms"),
        vs=vs,
        min_p50_rise_ms=min_rise,
        max_p50_rise_ms=max_rise,
        min_requests=ctx.integer(
            m.get("min_requests", 1), _join(sp, "min_requests"), minimum=0, what="bad count"
        ),
        filter=_filter(ctx, m, sp),
        **base,
    )


def _check_vs(ctx: _Ctx, steps: list[Step]) -> None:
    """``expect.vs`` names an earlier ``expect`` step (the window to compare with)."""
    for step in steps:
        if isinstance(step, ExpectStep) and step.vs is not None:
            if not isinstance(steps[step.vs], ExpectStep):
                ctx.fail(
                    _join(step.path, "expect.vs"),
                    "compares with a step that measures nothing",
                    "an earlier expect step",
                    f"steps[{step.vs}] is a {steps[step.vs].kind} step",
                )


def _check_fault_names(ctx: _Ctx, steps: list[Step]) -> None:
    """Fault names are unique; ``heal`` names a fault defined by an earlier step."""
    defined: set[str] = set()
    for step in steps:
        if isinstance(step, FaultStep) and step.name is not None:
            if step.name in defined:
                ctx.fail(
                    _join(step.path, "fault.name"),
                    "fault name used twice",
                    "a unique name",
                    step.name,
                )
            defined.add(step.name)
        elif isinstance(step, HealStep):
            for j, n in enumerate(step.names):
                if n not in defined:
                    known = ", ".join(sorted(defined)) or "none so far"
                    ctx.fail(
                        f"{step.path}.heal" + (f"[{j}]" if len(step.names) > 1 else ""),
                        f"no earlier fault is named {n!r}",
                        f"all or a fault name ({known})",
                        n,
                    )


def _check_unique(ctx: _Ctx, checks: list[CheckSpec]) -> None:
    """Each check at most once (a run checks each once; a second entry would be reported
    as never run)."""
    first: dict[str, str] = {}
    for c in checks:
        if c.name in first:
            ctx.fail(
                c.path,
                f"check {c.name!r} listed twice (first at {first[c.name]})",
                "each check once, its parameters in one entry",
            )
        first[c.name] = c.path


def _check(ctx: _Ctx, value: object, i: int) -> CheckSpec:
    path = f"checks[{i}]"
    params: object
    if isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, dict) and len(value) == 1:
        name, params = next(iter(value.items()))
        params = params or {}
    else:
        ctx.fail(path, "bad check", "a check name or {name: {parameters}}", _show(value))
    if name not in CHECK_NAMES:
        hint = difflib.get_close_matches(str(name), CHECK_NAMES, n=1)
        msg = f"unknown check {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        ctx.fail(path, msg, "one of " + ", ".join(CHECK_NAMES))
    pp = _join(path, str(name))
    allowed: dict[str, tuple[str, ...]] = {
        "steady_state": ("window", "within", "min_requests"),
        "timestamped": ("within",),
        "no_central_broker": ("tolerance",),
        "no_lost_messages": (),
        "evidence_verifies": (),
    }
    m = ctx.mapping(params, pp, allowed=allowed[str(name)])
    return CheckSpec(
        name=str(name),
        path=path,
        window_s=ctx.duration(m["window"], _join(pp, "window")) if "window" in m else None,
        within_s=ctx.duration(m["within"], _join(pp, "within")) if "within" in m else None,
        min_requests=ctx.integer(m["min_requests"], _join(pp, "min_requests"), minimum=1)
        if "min_requests" in m
        else None,
        tolerance=ctx.fraction(m["tolerance"], _join(pp, "tolerance"))
        if "tolerance" in m
        else None,
    )
