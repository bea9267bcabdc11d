"""The scenario interpreter: start a federation, run background load while the steps run in
order, record everything in a journal, judge expectations and checks.

Jepsen's model (a history of operations, a schedule of faults, checkers over the history)
with Chaos Toolkit's journal: every request, every fault window (start and end), every
expectation and check with pass/fail and its figures. Time: ``t`` values in the journal
are wall-clock seconds since the run origin; scenario (X-Road) durations are divided by
``time_scale`` before sleeping.

The federation is reached only through its manifest and HTTP (see :mod:`._manifest`), and
is started by the caller-supplied ``start_federation(instance_paths, run_dir, time_scale,
seed[, settings=...])`` async context manager that yields the manifest dict.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import ssl
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from chaos import FaultClient
from federation.bench import RequestRecord, Target, run_closed_loop, run_open_loop, send_one
from federation.bench._load import ClientFactory, default_client_factory, xroad_target
from federation.clock import iso, parse_iso
from federation.errors import ScenarioError
from federation.scenario._checks import (
    CentralLink,
    CheckResult,
    Sample,
    check_audit,
    check_no_central_broker,
)
from federation.scenario._faults import FaultApplyError, FaultRunner, Revoker
from federation.scenario._history import History, p50_rise_problems, stats
from federation.scenario._manifest import (
    CENTRAL_KINDS,
    ManifestError,
    ManifestView,
    component_role,
)
from federation.scenario._model import (
    CallSpec,
    CheckSpec,
    ExpectStep,
    FaultStep,
    Filter,
    HealStep,
    PartitionFault,
    RequestStep,
    RevokeFault,
    Scenario,
    Step,
    WaitStep,
    WaitUntilStep,
)
from federation.settings import Timers

logger = logging.getLogger(__name__)

StartFederation = Callable[..., AbstractAsyncContextManager[Mapping[str, Any]]]
Auditor = Callable[[Path], Mapping[str, Any]]
Progress = Callable[[str], None]

JOURNAL_VERSION = 1
POLL_REAL_S = 0.05
BASELINE_SAMPLE_REAL_S = 0.05
BASELINE_PERIODS = 2.5
OUTDATED_CONF = "Server.ClientProxy.OutdatedGlobalConf"
EXPIRY_TOLERANCE_REAL_S = 0.05  # clocks of the runner and the security server
EVIDENCE_CHECKS = ("no_lost_messages", "evidence_verifies", "timestamped")


@dataclass(slots=True)
class RunResult:
    exit_code: int
    status: str
    journal: dict[str, Any]
    journal_path: Path
    report_path: Path | None


def _legs(body: bytes) -> list[dict[str, Any]]:
    """Every JSON object in ``body`` that reports an X-Road exchange (has an ``xroad_id``
    key, whatever its value)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return []
    out: list[dict[str, Any]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "xroad_id" in node:
                out.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(obj)
    return out


def chained_exchanges(body: bytes) -> list[dict[str, Any]]:
    """The X-Road exchanges a provider made to answer (once-only): every JSON object in the
    response body with an ``xroad_id`` string, with its ``service`` and ``status``."""
    return [
        {"xroad_id": n["xroad_id"], "service": n.get("service"), "status": n.get("status")}
        for n in _legs(body)
        if isinstance(n["xroad_id"], str) and n["xroad_id"]
    ]


def broken_legs(body: bytes) -> list[str]:
    """The exchanges a successful answer reports that did not succeed through X-Road: an
    object with an ``xroad_id`` key whose id is missing (``null``, empty) or whose status
    is not 200. An answer that claims an inner leg it did not make through X-Road fails."""
    out = []
    for n in _legs(body):
        xid, status = n["xroad_id"], n.get("status")
        if not (isinstance(xid, str) and xid):
            out.append(f"chained leg to {n.get('service')} has no X-Road id ({xid!r})")
        elif status != 200:
            out.append(f"chained leg to {n.get('service')} ({xid}) answered {status}")
    return out


@dataclass(slots=True)
class StepResult:
    step: Step
    start: float
    end: float | None = None
    passed: bool | None = None
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self, scale: float) -> dict[str, Any]:
        return {
            "index": self.step.index,
            "path": self.step.path,
            "kind": self.step.kind,
            "spec": self.step.raw,
            "note": self.step.note,
            "start": round(self.start, 6),
            "end": None if self.end is None else round(self.end, 6),
            "start_scenario_s": round(self.start * scale, 3),
            "end_scenario_s": None if self.end is None else round(self.end * scale, 3),
            "passed": self.passed,
            "message": self.message,
            "figures": self.figures,
        }


def _is_cancel(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_cancel(e) for e in exc.exceptions)
    return isinstance(exc, trio.Cancelled | KeyboardInterrupt)


class _Run:
    def __init__(
        self,
        scenario: Scenario,
        run_dir: Path,
        *,
        time_scale: float,
        auditor: Auditor | None,
        progress: Progress | None,
        client_factory: ClientFactory | None,
        revoke: Revoker | None,
        unrevoke: Revoker | None,
        sample_interval_real_s: float,
    ) -> None:
        self.sc = scenario
        self.run_dir = run_dir
        self.scale = time_scale
        self.auditor = auditor
        self.progress = progress
        self.client_factory = client_factory
        self.revoke, self.unrevoke = revoke, unrevoke
        self.sample_interval = sample_interval_real_s
        self.history = History()
        self.origin = trio.current_time()
        self.started_at = _dt.datetime.now(_dt.UTC)
        self.steps: list[StepResult] = []
        self.checks: list[CheckResult] = []
        self.samples: list[Sample] = []
        self.link_first: dict[str, tuple[int, int]] = {}
        self.link_last: dict[str, tuple[int, int]] = {}
        self.baseline: tuple[float, float] | None = None
        self.load_window: list[float] = []
        self.view: ManifestView | None = None
        self.faults: FaultRunner | None = None
        self.chaos: FaultClient | None = None
        self.current: StepResult | None = None
        self.status = "running"
        self.phase = "starting"
        self._ssl: ssl.SSLContext | None = None
        self.error: str | None = None
        self.manifest_summary: dict[str, Any] = {}
        # records awaiting a time-stamp when a fault that cut a TSA was healed, by fault
        self.backlogs: dict[str, int | None] = {}

    # ---- time -------------------------------------------------------------------------
    def now(self) -> float:
        return trio.current_time() - self.origin

    def real(self, scenario_s: float) -> float:
        return scenario_s / self.scale

    # ---- validation against the running federation -------------------------------------
    def _fail(self, path: str, message: str) -> ScenarioError:
        return ScenarioError(message, file=str(self.sc.file), path=path)

    def _target(self, call: CallSpec, path: str) -> Target:
        assert self.view is not None
        try:
            url, _comp = self.view.client_url(call.client, call.via)
        except ManifestError as exc:
            raise self._fail(path, str(exc)) from None
        if call.url is not None:
            return Target(
                client=call.client,
                service=call.url,
                url=url.rstrip("/") + call.url,
                method=call.method,
                headers=(("X-Road-Client", call.client),),
                direction=call.client.split("/", 1)[0],
            )
        assert call.service is not None
        inst = call.service.split("/", 1)[0]
        if not self.view.has_instance(inst):
            raise self._fail(path + ".service", f"instance {inst} is not part of this federation")
        return xroad_target(
            url,
            call.client,
            call.service,
            call.path,
            method=call.method,
            body_bytes=call.body_bytes,
            weight=call.weight,
        )

    def _validate(self) -> None:
        """Resolve every call and fault target now, so a mismatch stops the run before any
        load (exit code 2), naming the YAML path."""
        assert self.view is not None
        view = self.view
        if self.sc.load is not None:
            for i, c in enumerate(self.sc.load.calls):
                self._target(c, f"load.calls[{i}]")
        comps = view.components()
        for step in self.sc.steps:
            if isinstance(step, RequestStep):
                self._target(step.call, f"{step.path}.request")
            elif isinstance(step, FaultStep):
                p = f"{step.path}.fault.{step.fault_kind}"
                f = step.fault
                try:
                    if isinstance(f, RevokeFault):
                        view.cert_paths(f.cert, f.of)
                        view.ocsp_admin_url(f.instance)
                    elif not view.chaos_url:
                        raise ManifestError("the manifest has no chaos API (chaos.api_url)")
                    elif isinstance(f, PartitionFault):
                        if f.target not in comps:
                            raise ManifestError(f"no component {f.target} in this federation")
                        if f.source is not None and not view.partition_links(f.target, f.source):
                            raise ManifestError(
                                f"no chaos link leads from {f.source} to {f.target}"
                            )
                    elif f.between is not None:
                        for inst in f.between:
                            if not view.has_instance(inst):
                                raise ManifestError(
                                    f"instance {inst} is not part of this federation"
                                )
                        if not view.links_between(*f.between):
                            a, b = f.between
                            raise ManifestError(f"no chaos link runs between {a} and {b}")
                    elif f.link is not None and f.link not in view.links:
                        raise ManifestError(f"no chaos link named {f.link}")
                except ManifestError as exc:
                    raise self._fail(p, str(exc)) from None

    # ---- main -------------------------------------------------------------------------
    async def main(self, manifest: Mapping[str, Any]) -> None:
        self.view = view = ManifestView(manifest)
        if view.time_scale and not math.isclose(view.time_scale, self.scale):
            logger.warning(
                "manifest time_scale %s differs from %s; using the manifest's",
                view.time_scale,
                self.scale,
            )
            self.scale = view.time_scale
        self.manifest_summary = {
            "run_dir": manifest.get("run_dir"),
            "chaos_api": view.chaos_url,
            "links": {
                n: {"kind": lk.kind, "from": lk.source, "to": lk.target}
                for n, lk in sorted(view.links.items())
            },
            "instances": sorted(view.instances),
        }
        self._validate()
        self.chaos = FaultClient(view.chaos_url) if view.chaos_url else None
        self.faults = FaultRunner(view, self.chaos, revoke=self.revoke, unrevoke=self.unrevoke)
        self.origin = trio.current_time()
        try:
            async with trio.open_nursery() as bg:
                if self.chaos is not None:
                    await bg.start(self._sampler)
                if self.progress is not None:
                    bg.start_soon(self._progress_task)
                stop = trio.Event()
                load_done = trio.Event()
                if self.sc.load is not None:
                    if self.sc.check("no_central_broker") is not None and self.chaos is not None:
                        self.phase = "baseline (no load)"
                        await self._measure_baseline()
                    self.load_window = [self.now()]
                    bg.start_soon(self._load_task, stop, load_done)
                else:
                    load_done.set()
                for step in self.sc.steps:
                    await self._exec(step)
                self.phase = "final checks"
                spec = self.sc.check("steady_state")
                if spec is not None:
                    self.checks.append(await self._steady_state(spec))
                stop.set()
                timeout = (self.sc.load.timeout_real_s if self.sc.load else 0) + 2.0
                with trio.move_on_after(timeout):
                    await load_done.wait()
                if self.sc.load is not None:
                    self.load_window.append(self.now())
                await self._heal_rest()
                if self.chaos is not None:
                    await self._sample_now()
                await self._final_checks()
                bg.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(10):
                    await self._heal_rest()
                if self.chaos is not None:
                    await self.chaos.aclose()

    async def _measure_baseline(self) -> None:
        """Sample the counters densely with no load, so each configuration download on a
        central link shows as a burst of its own (``no_central_broker`` sizes them)."""
        await self._sample_now()
        b0 = self.now()
        end = b0 + self._baseline_real_s()
        step = min(BASELINE_SAMPLE_REAL_S, self._conf_period_real_s() / 10)
        while self.now() < end:
            await trio.sleep(min(step, max(end - self.now(), 0.0)))
            await self._sample_now()
        self.baseline = (b0, self.now())

    def _conf_period_real_s(self) -> float:
        assert self.view is not None
        periods = [t.get("conf_update_s") for t in self.view.timers().values()]
        return min((p for p in periods if p), default=Timers().conf_update_s / self.scale)

    def _central_links(self) -> list[CentralLink]:
        """The central links with the download period of their source and the intervals in
        which a partition cut them."""
        assert self.view is not None
        timers = self.view.timers()
        down: dict[str, list[tuple[float, float]]] = {}
        for w in self.faults.windows if self.faults else []:
            if w.kind == "partition":
                end = w.end if w.end is not None else self.now()
                for t in w.targets:
                    down.setdefault(t, []).append((w.start, end))
        out = []
        for name, lk in sorted(self.view.links.items()):
            if lk.kind not in CENTRAL_KINDS:
                continue
            period = None
            if lk.kind == "ss-cs":
                inst = lk.source.split(".", 1)[0]
                period = timers.get(inst, {}).get("conf_update_s") or (
                    Timers().conf_update_s / self.scale
                )
            out.append(CentralLink(name, lk.kind, period, tuple(down.get(name, ()))))
        return out

    def _baseline_real_s(self) -> float:
        assert self.view is not None
        periods = [t.get("conf_update_s") for t in self.view.timers().values()]
        period = max((p for p in periods if p), default=Timers().conf_update_s / self.scale)
        # at least one whole download per link away from both ends (download_sizes)
        return max(BASELINE_PERIODS * period + 0.25, 1.0)

    # ---- background tasks -------------------------------------------------------------
    async def _load_task(self, stop: trio.Event, done: trio.Event) -> None:
        load = self.sc.load
        assert load is not None
        try:
            targets = [self._target(c, f"load.calls[{i}]") for i, c in enumerate(load.calls)]
            factory = self.client_factory or default_client_factory(load.timeout_real_s)
            if load.rate is not None:
                await run_open_loop(
                    targets,
                    load.rate,
                    sink=self.history.add,
                    origin=self.origin,
                    seed=self.sc.seed,
                    workers=load.workers,
                    stop=stop,
                    client_factory=factory,
                )
            else:
                await run_closed_loop(
                    targets,
                    load.concurrency or 1,
                    sink=self.history.add,
                    origin=self.origin,
                    seed=self.sc.seed,
                    stop=stop,
                    client_factory=factory,
                )
        finally:
            done.set()

    async def _sample_now(self) -> None:
        assert self.chaos is not None
        assert self.view is not None
        try:
            proxies = await self.chaos.proxies()
        except Exception as exc:  # counters are best effort
            logger.warning("cannot read chaos counters: %s", exc)
            return
        by_kind: dict[str, int] = {}
        by_link: dict[str, int] = {}
        for name, info in proxies.items():
            st = info.get("stats") or {}
            up, down = int(st.get("bytes_upstream", 0)), int(st.get("bytes_downstream", 0))
            self.link_first.setdefault(name, (up, down))
            self.link_last[name] = (up, down)
            kind = self._kind(name)
            by_kind[kind] = by_kind.get(kind, 0) + up + down
            by_link[name] = up + down
        self.samples.append(Sample(self.now(), by_kind, by_link))

    def _kind(self, name: str) -> str:
        assert self.view is not None
        link = self.view.links.get(name)
        if link is not None:
            return link.kind
        src, _, dst = name.partition("--")
        return f"{component_role(src)}-{component_role(dst)}" if dst else "other"

    async def _sampler(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._sample_now()
        task_status.started()
        while True:
            await trio.sleep(self.sample_interval)
            await self._sample_now()

    def progress_line(self) -> str:
        t = self.now()
        recent = self.history.completed(max(0.0, t - 1.0), t)
        total = len(self.history)
        errors = sum(1 for r in self.history.records if not r.ok)
        step = self.current
        if step is not None:
            where = f"step {step.step.index + 1}/{len(self.sc.steps)} {step.step.kind}"
        else:
            where = self.phase
        active = ", ".join(w.name for w in self.faults.active) if self.faults else ""
        rate = f"{len(recent) / 1.0:.0f} req/s"
        pct = f"{100 * errors / total:.1f}%" if total else "0%"
        return (
            f"[{t:6.1f}s | x{self.scale:g} = {t * self.scale:7.0f}s] {where} | {rate} | "
            f"{total} req, {errors} errors ({pct}) | faults: {active or 'none'}"
        )

    async def _progress_task(self) -> None:
        assert self.progress is not None
        while True:
            await trio.sleep(1.0)
            self.progress(self.progress_line())

    # ---- steps ------------------------------------------------------------------------
    async def _exec(self, step: Step) -> None:
        res = StepResult(step, self.now())
        self.steps.append(res)
        self.current = res
        try:
            if isinstance(step, WaitStep):
                await trio.sleep(self.real(step.duration_s))
            elif isinstance(step, RequestStep):
                await self._request(step, res)
            elif isinstance(step, ExpectStep):
                await self._expect(step, res)
            elif isinstance(step, WaitUntilStep):
                await self._wait_until(step, res)
            elif isinstance(step, FaultStep):
                assert self.faults is not None
                try:
                    w = await self.faults.apply(step, self.now())
                    res.message = f"{w.name}: {', '.join(w.targets)}"
                    res.figures = {"fault": w.name, "targets": w.targets}
                except (FaultApplyError, ManifestError) as exc:
                    res.passed = False
                    res.message = f"could not apply the fault: {exc}"
            elif isinstance(step, HealStep):
                assert self.faults is not None
                names = None if step.all else list(step.names)
                await self._backlog_at_heal(names, res)
                try:
                    healed = await self.faults.heal(names, self.now(), step.path)
                    res.message = "healed " + (", ".join(w.name for w in healed) or "nothing")
                    if "awaiting_timestamp" in res.figures:
                        res.message += (
                            f"; {res.figures['awaiting_timestamp']} records were awaiting a "
                            "time-stamp"
                        )
                except FaultApplyError as exc:
                    res.passed = False
                    res.message = str(exc)
        finally:
            res.end = self.now()
            self.current = None
        if self.progress is not None and res.passed is not None:
            mark = "PASS" if res.passed else "FAIL"
            self.progress(f"  {mark} {step.path} {step.kind}: {res.message}")

    async def _backlog_at_heal(self, names: list[str] | None, res: StepResult) -> None:
        """Before healing a fault that cut a time-stamping authority, count the records
        awaiting a time-stamp (the backlog the ``timestamped`` check then sees stamped)."""
        assert self.faults is not None
        assert self.view is not None
        if self.auditor is None or self.sc.check("timestamped") is None:
            return
        links = self.view.links
        cut = [
            w.name
            for w in self.faults.active
            if (names is None or w.name in names)
            and w.kind == "partition"
            and any(t in links and links[t].kind == "ss-tsa" for t in w.targets)
        ]
        if not cut:
            return
        try:
            audit = await trio.to_thread.run_sync(self.auditor, self.run_dir)
            backlog: int | None = int(audit.get("unstamped", audit.get("awaiting_timestamp", 0)))
            res.figures["records"] = audit.get("records")
        except Exception as exc:  # reported by the timestamped check
            logger.warning("cannot audit the message logs at the heal: %s", exc)
            backlog = None
        res.figures["awaiting_timestamp"] = backlog
        for name in cut:
            self.backlogs[name] = backlog

    async def _request(self, step: RequestStep, res: StepResult) -> None:
        base = self._target(step.call, f"{step.path}.request")
        target = Target(
            client=base.client,
            service=base.service,
            url=base.url,
            method=base.method,
            headers=base.headers + step.headers,
            body=base.body,
            direction=base.direction,
        )
        deadline = self.now() + (self.real(step.within_s) if step.within_s else 0.0)
        timeout = self.sc.load.timeout_real_s if self.sc.load else 10.0
        attempts = 0
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        async with httpx.AsyncClient(timeout=timeout, verify=self._ssl) as client:
            while True:
                attempts += 1
                rec, body = await send_one(client, target, origin=self.origin, source="step")
                self.history.add(rec)
                problems = self._judge_response(step, rec, body)
                if not problems or self.now() >= deadline:
                    break
                await trio.sleep(max(0.25, self.real(1.0)))
        res.passed = not problems
        res.figures = {
            "status": rec.status,
            "error": rec.error,
            "latency_ms": round(rec.latency_s * 1000, 3),
            "xroad_id": rec.xroad_id,
            "attempts": attempts,
            "body_excerpt": body[:300].decode("utf-8", "replace"),
        }
        chained = chained_exchanges(body)
        if chained:
            res.figures["chained"] = chained
        res.message = "; ".join(problems) if problems else f"{rec.status} {rec.error or 'OK'}"
        if chained and not problems:
            legs = ", ".join(f"{c['service']} {c['xroad_id']} ({c['status']})" for c in chained)
            res.message += f"; chained: {legs}"

    @staticmethod
    def _judge_response(step: RequestStep, rec: RequestRecord, body: bytes) -> list[str]:
        problems = []
        if step.status is not None and rec.status != step.status:
            problems.append(f"status {rec.status}, expected {step.status}")
        if step.error is not None and rec.error != step.error:
            problems.append(f"error {rec.error or 'none'}, expected {step.error}")
        if step.status is None and step.error is None and not rec.ok:
            problems.append(f"failed with {rec.error} (status {rec.status}), expected success")
        text = body.decode("utf-8", "replace")
        for frag in step.body_contains:
            if frag not in text:
                problems.append(f"body lacks {frag!r}")
        if step.error is None and (step.status is None or step.status < 400):
            problems += broken_legs(body)
        return problems

    async def _expect(self, step: ExpectStep, res: StepResult) -> None:
        start = self.now()
        await trio.sleep(self.real(step.window_s))
        end = self.now()
        recs = self.history.completed(start, end, step.filter)
        fig = stats(recs)
        fig["filter"] = step.filter.to_json()
        fig["window"] = [round(start, 6), round(end, 6)]
        problems = []
        n, rate = fig["requests"], fig["error_rate"]
        types: dict[str, int] = fig["error_types"]
        if n < step.min_requests:
            problems.append(
                f"only {n} requests in the window, expected at least {step.min_requests}"
            )
        if step.error_rate is not None and rate is not None and rate > step.error_rate:
            problems.append(f"error rate {rate:.3f} > {step.error_rate:g} ({_top(types)})")
        if step.min_error_rate is not None and (rate or 0.0) < step.min_error_rate:
            problems.append(f"error rate {rate or 0:.3f} < {step.min_error_rate:g}")
        for e in step.errors_seen:
            if e not in types:
                problems.append(f"{e} not seen")
        for e in step.errors_absent:
            if e in types:
                problems.append(f"{e} seen {types[e]} times")
        for key, limit, low in (
            ("p50_ms", step.p50_ms, False),
            ("p99_ms", step.p99_ms, False),
            ("p50_ms", step.min_p50_ms, True),
        ):
            if limit is None:
                continue
            got = fig.get(key)
            if got is None:
                problems.append(f"{key}: no successful request to measure")
            elif not low and got > limit:
                problems.append(f"{key} {got:.1f} > {limit:g}")
            elif low and got < limit:
                problems.append(f"{key} {got:.1f} < {limit:g}")
        problems += self._p50_rise(step, fig)
        res.passed = not problems
        res.figures = fig
        summary = f"{n} requests, error rate {rate if rate is not None else '-'}"
        if "p99_ms" in fig:
            summary += f", p50 {fig['p50_ms']:.1f} ms, p99 {fig['p99_ms']:.1f} ms"
        vs_fig = fig.get("p50_vs")
        if step.vs is not None and vs_fig and vs_fig.get("rise_ms") is not None:
            summary += f", p50 rise {vs_fig['rise_ms']:+.1f} ms over {vs_fig['step']}"
        res.message = "; ".join(problems) if problems else summary

    def _p50_rise(self, step: ExpectStep, fig: dict[str, Any]) -> list[str]:
        """The window's p50 against an earlier ``expect`` window's: always recorded against
        the latest one with the same filter (figure ``p50_vs``); judged against the step
        named by ``vs`` with ``min_p50_rise_ms`` / ``max_p50_rise_ms``."""
        vs, min_rise, max_rise = step.vs, step.min_p50_rise_ms, step.max_p50_rise_ms
        earlier = [
            (r, r.step)
            for r in self.steps
            if isinstance(r.step, ExpectStep) and r.step.index < step.index and r.figures
        ]
        if vs is not None:
            base = next((r for r, st in earlier if st.index == vs), None)
        else:
            same = [r for r, st in earlier if st.filter == step.filter]
            base = same[-1] if same else None
        p50 = fig.get("p50_ms")
        if base is None:
            return [f"p50 rise: no earlier expect window steps[{vs}]"] if vs is not None else []
        base_p50 = base.figures.get("p50_ms")
        fig["p50_vs"] = {
            "step": base.step.path,
            "p50_ms": base_p50,
            "rise_ms": None if p50 is None or base_p50 is None else round(p50 - base_p50, 3),
        }
        return p50_rise_problems(
            p50, base_p50, base=base.step.path, min_rise=min_rise, max_rise=max_rise
        )

    def _sliding(
        self, since: float, window_real: float, min_requests: int, flt: Filter
    ) -> list[RequestRecord]:
        now = self.now()
        recs = self.history.completed(max(since, now - window_real), now, flt)
        if len(recs) < min_requests:
            recs = self.history.last_n(min_requests, since, flt)
        return recs

    async def _wait_until(self, step: WaitUntilStep, res: StepResult) -> None:
        start = self.now()
        deadline = start + self.real(step.within_s)
        last_fault = max(
            (w.start for w in (self.faults.windows if self.faults else [])), default=None
        )
        while True:
            if step.error is not None:
                rec = self.history.first_error(step.error, start, step.filter)
                if rec is not None:
                    res.passed = True
                    effect = rec.t_end
                    res.figures = {
                        "seen_at": round(effect, 6),
                        "time_to_effect_s": round((effect - start) * self.scale, 3),
                        "status": rec.status,
                        "client": rec.client,
                        "service": rec.service,
                    }
                    if last_fault is not None:
                        res.figures["since_fault_s"] = round((effect - last_fault) * self.scale, 3)
                    tte = res.figures["time_to_effect_s"]
                    res.message = f"{step.error} seen after {tte:.1f} s (scenario time)"
                    if step.error == OUTDATED_CONF:
                        self._judge_expiry(rec, res)
                    return
            else:
                recs = self._sliding(
                    start, self.real(step.window_s), step.min_requests, step.filter
                )
                if len(recs) >= step.min_requests:
                    errs = sum(1 for r in recs if not r.ok)
                    rate = errs / len(recs)
                    if (step.error_rate is not None and rate <= step.error_rate) or (
                        step.min_error_rate is not None and rate >= step.min_error_rate
                    ):
                        res.passed = True
                        reached = self.now()
                        res.figures = {
                            "reached_after_s": round((reached - start) * self.scale, 3),
                            "window_requests": len(recs),
                            "window_errors": errs,
                        }
                        after = res.figures["reached_after_s"]
                        res.message = f"{_cond(step)} after {after:.1f} s (scenario time)"
                        return
            if self.now() >= deadline:
                break
            await trio.sleep(POLL_REAL_S)
        res.passed = False
        recent = stats(
            self._sliding(start, self.real(step.window_s), step.min_requests, step.filter)
        )
        res.figures = {"last_window": recent}
        what = step.error if step.error is not None else _cond(step)
        res.message = (
            f"{what} not reached within {step.within_s:g} s (scenario time); "
            f"last window: {recent['requests']} requests, {_top(recent['error_types'])}"
        )

    def _own_conf(self, client: str) -> tuple[str, float, float] | None:
        """``(server, Expire-date, downloaded at)`` of the own-instance configuration the
        security server serving ``client`` holds, from its ``status.json`` (wall-clock
        epoch seconds); None when the manifest or the status does not tell."""
        assert self.view is not None
        try:
            _url, comp = self.view.client_url(client)
        except ManifestError:
            return None
        for inst, sid, ss in self.view.servers():
            if self.view.component_of_server(inst, ss, sid) != comp:
                continue
            gdir = ss.get("globalconf_dir")
            if not gdir:
                return None
            try:
                status = json.loads((Path(gdir) / "status.json").read_text(encoding="utf-8"))
                own = status["globalconf"][inst]
                return comp, parse_iso(own["expires"]), parse_iso(own["downloaded_at"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        return None

    def _judge_expiry(self, rec: RequestRecord, res: StepResult) -> None:
        """``OutdatedGlobalConf`` only once the configuration expired: the request that
        got it must not have completed before the Expire-date its client's security server
        holds (figure ``since_expiry_s``, scenario time; negative: before expiry)."""
        done_wall = time.time() - (self.now() - rec.t_end)
        own = self._own_conf(rec.client)
        if own is None or own[2] > done_wall:
            # no status, or a newer download since: the expiry that applied is unknown
            res.figures["since_expiry_s"] = None
            res.message += "; the expiry it followed is unknown (no status of its server)"
            return
        server, expires, downloaded = own
        since = done_wall - expires
        res.figures.update(
            {
                "server": server,
                "conf_expires": iso(expires),
                "conf_downloaded_at": iso(downloaded),
                "since_expiry_s": round(since * self.scale, 3),
                "since_download_s": round((done_wall - downloaded) * self.scale, 3),
            }
        )
        if since < -EXPIRY_TOLERANCE_REAL_S:
            res.passed = False
            res.message = (
                f"{OUTDATED_CONF} {-since * self.scale:.1f} s (scenario time) before {server}'s "
                f"configuration expired ({iso(expires)})"
            )
        else:
            res.message += f", {since * self.scale:.1f} s after {server}'s configuration expired"

    # ---- checks -----------------------------------------------------------------------
    async def _steady_state(self, spec: CheckSpec) -> CheckResult:
        name = "steady_state"
        assert self.faults is not None
        if self.sc.load is None:
            return CheckResult(name, False, "no background load to judge", path=spec.path)
        active = [w.name for w in self.faults.active]
        if active:
            return CheckResult(
                name, False, f"faults still active: {', '.join(active)}", path=spec.path
            )
        ends = [w.end for w in self.faults.windows if w.end is not None]
        last_heal = max(ends, default=0.0)
        window = self.real(spec.window_s or 10.0)
        min_req = spec.min_requests or 10
        within = self.real(spec.within_s or 120.0)
        if self.sc.load.rate:  # leave time for min_requests to arrive at all
            within = max(within, 2.0 * min_req / self.sc.load.rate)
        deadline = self.now() + within
        while True:
            recs = self._sliding(last_heal, window, min_req, Filter())
            if len(recs) >= min_req and all(r.ok for r in recs):
                after = [
                    r for r in self.history.records if r.t_end >= last_heal and r.source != "step"
                ]
                last_err = max((r.t_end for r in after if not r.ok), default=last_heal)
                figs = {
                    "last_heal_s": round(last_heal * self.scale, 3),
                    "recovered_after_s": round((last_err - last_heal) * self.scale, 3),
                    "window_requests": len(recs),
                }
                return CheckResult(
                    name,
                    True,
                    f"error rate 0 again {figs['recovered_after_s']:.1f} s (scenario time) "
                    "after the last heal",
                    figs,
                    spec.path,
                )
            if self.now() >= deadline:
                st = stats(recs)
                why = (
                    f"only {len(recs)} requests completed after the last heal (need {min_req})"
                    if len(recs) < min_req
                    else f"errors continue after the last heal: {_top(st['error_types'])}"
                )
                return CheckResult(
                    name,
                    False,
                    why,
                    {"last_window": st},
                    spec.path,
                )
            await trio.sleep(POLL_REAL_S)

    def _exchanges(self) -> tuple[int, list[str], int]:
        """Successful exchanges, their X-Road ids, and how many of them are inner legs a
        provider made through X-Road to answer a step's request (``chained`` figures)."""
        ok = [
            r
            for r in self.history.records
            if r.ok and "/" in r.service and not r.service.startswith("/")
        ]
        ids = [r.xroad_id for r in ok if r.xroad_id]
        inner = {
            c["xroad_id"]
            for st in self.steps
            for c in st.figures.get("chained", ())
            if c.get("status") == 200 and c["xroad_id"] not in ids
        }
        return len(ok) + len(inner), ids + sorted(inner), len(inner)

    async def _final_checks(self) -> None:
        n_ex, ids, n_inner = self._exchanges()
        wanted = [c for c in self.sc.checks if c.name in EVIDENCE_CHECKS]
        if wanted:
            audit: Mapping[str, Any] | None = None
            if self.auditor is not None:
                ts_spec = self.sc.check("timestamped")
                within = (
                    self.real(ts_spec.within_s)
                    if ts_spec and ts_spec.within_s
                    else self._ts_wait_real_s()
                )
                deadline = self.now() + within
                while True:
                    try:
                        audit = await trio.to_thread.run_sync(self.auditor, self.run_dir)
                    except Exception as exc:  # an auditor crash fails the checks
                        audit = None
                        for c in wanted:
                            self.checks.append(
                                CheckResult(c.name, False, f"auditor failed: {exc}", path=c.path)
                            )
                        wanted = []
                        break
                    if (
                        ts_spec is None
                        or not audit.get("unstamped", audit.get("awaiting_timestamp"))
                        or self.now() >= deadline
                    ):
                        break
                    await trio.sleep(max(POLL_REAL_S * 10, self.real(5.0)))
            for c in wanted:
                r = check_audit(c.name, audit, ok_ids=ids, exchanges=n_ex)
                r.path = c.path
                if c.name == "timestamped" and self.backlogs:
                    _judge_backlog(r, self.backlogs)
                if c.name == "no_lost_messages":
                    r.figures["chained_exchanges"] = n_inner
                    if n_inner and r.passed:
                        r.message += (
                            f"; {n_inner} of them inner legs a provider made through X-Road "
                            "(request steps' chained figures)"
                        )
                self.checks.append(r)
        spec = self.sc.check("no_central_broker")
        if spec is not None:
            load = (
                (self.load_window[0], self.load_window[1]) if len(self.load_window) == 2 else None
            )
            r = check_no_central_broker(
                self.samples,
                baseline=self.baseline,
                load=load,
                links=self._central_links(),
                tolerance=spec.tolerance,
                exchanges=n_ex,
            )
            r.path = spec.path
            self.checks.append(r)
        order = {c.name: i for i, c in enumerate(self.sc.checks)}
        self.checks.sort(key=lambda c: order.get(c.name, 99))

    def _ts_wait_real_s(self) -> float:
        assert self.view is not None
        worst = 0.0
        for t in self.view.timers().values():
            worst = max(
                worst, t.get("timestamping_interval_s", 0.0) + t.get("timestamp_retry_delay_s", 0.0)
            )
        if worst <= 0:
            d = Timers()
            worst = (d.timestamping_interval_s + d.timestamp_retry_delay_s) / self.scale
        return 2 * worst + 1.0

    async def _heal_rest(self) -> None:
        if self.faults is not None and self.faults.active:
            try:
                await self.faults.heal(None, self.now(), "end of run")
            except FaultApplyError as exc:
                logger.warning("%s", exc)

    # ---- journal ----------------------------------------------------------------------
    def journal(self) -> dict[str, Any]:
        expectations = [s.to_json(self.scale) for s in self.steps if s.passed is not None]
        checks = [c.to_json() for c in self.checks]
        ran = {c["name"] for c in checks}
        for c in self.sc.checks:
            if c.name not in ran:
                checks.append(
                    {
                        "name": c.name,
                        "path": c.path,
                        "passed": None,
                        "message": "not run",
                        "figures": {},
                    }
                )
        timers: dict[str, Any] = {}
        if self.view is not None:
            for inst, tv in self.view.timers().items():
                timers[inst] = {
                    k: {"real_s": v, "xroad_s": round(v * self.scale, 3)} for k, v in tv.items()
                }
        records = self.history.records
        ended = _dt.datetime.now(_dt.UTC)
        return {
            "xfed_journal": JOURNAL_VERSION,
            "status": self.status,
            "error": self.error,
            "scenario": {
                "name": self.sc.name,
                "description": self.sc.description,
                "file": str(self.sc.file),
                "instances": [str(p) for p in self.sc.instances],
                "definition": self.sc.raw,
            },
            "seed": self.sc.seed,
            "time_scale": self.scale,
            "settings": dict(self.sc.settings),
            "started_at": self.started_at.isoformat(),
            "ended_at": ended.isoformat(),
            "duration_s": round(self.now(), 3),
            "run_dir": str(self.run_dir),
            "manifest": self.manifest_summary,
            "timers": timers,
            "load": None
            if self.sc.load is None
            else {
                "rate": self.sc.load.rate,
                "concurrency": self.sc.load.concurrency,
                "start": self.load_window[0] if self.load_window else None,
                "end": self.load_window[1] if len(self.load_window) > 1 else None,
                "calls": [
                    {"client": c.client, "service": c.service, "path": c.path, "weight": c.weight}
                    for c in self.sc.load.calls
                ],
            },
            "steps": [s.to_json(self.scale) for s in self.steps],
            "faults": [w.to_json(self.scale) for w in (self.faults.windows if self.faults else [])],
            "expectations": expectations,
            "checks": checks,
            "summary": stats([r for r in records if r.source != "step"]),
            "data_flow": self._data_flow(),
            "requests": [r.to_json() for r in records],
        }

    def _data_flow(self) -> dict[str, Any]:
        links = {}
        kinds: dict[str, dict[str, int]] = {}
        for name, last in sorted(self.link_last.items()):
            first = self.link_first.get(name, (0, 0))
            up, down = max(0, last[0] - first[0]), max(0, last[1] - first[1])
            kind = self._kind(name) if self.view is not None else "other"
            lk = self.view.links.get(name) if self.view is not None else None
            links[name] = {
                "kind": kind,
                "from": lk.source if lk else name.partition("--")[0],
                "to": lk.target if lk else name.partition("--")[2],
                "bytes_upstream": up,
                "bytes_downstream": down,
            }
            k = kinds.setdefault(
                kind, {"bytes": 0, "bytes_upstream": 0, "bytes_downstream": 0, "links": 0}
            )
            k["bytes"] += up + down
            k["bytes_upstream"] += up
            k["bytes_downstream"] += down
            k["links"] += 1
        return {
            "kinds": kinds,
            "links": links,
            "samples": [
                {"t": round(s.t, 3), "by_kind": dict(s.by_kind), "by_link": dict(s.by_link)}
                for s in self.samples
            ],
            "baseline": list(self.baseline) if self.baseline else None,
        }

    def passed(self) -> bool:
        exps = [s.passed for s in self.steps if s.passed is not None]
        return (
            all(exps)
            and all(c.passed for c in self.checks)
            and len(self.checks) == len(self.sc.checks)
        )


def _judge_backlog(r: CheckResult, backlogs: Mapping[str, int | None]) -> None:
    """``timestamped`` after a time-stamping outage: the records that were awaiting a
    time-stamp at the heal must all have been stamped since."""
    r.figures["backlog_at_heal"] = dict(backlogs)
    unknown = [n for n, b in backlogs.items() if b is None]
    if unknown:
        r.passed = False
        r.message += f"; the backlog at the heal of {', '.join(unknown)} could not be counted"
        return
    total = sum(b for b in backlogs.values() if b is not None)
    what = ", ".join(f"{b} at the heal of {n}" for n, b in backlogs.items())
    r.figures["backlog_stamped"] = r.passed
    if r.passed:
        r.message += f"; the backlog ({what}) was stamped after the heal"
    else:
        r.message += f"; the backlog of {total} records ({what}) was not all stamped"


def _cond(step: WaitUntilStep) -> str:
    if step.error_rate is not None:
        return f"error rate <= {step.error_rate:g}"
    return f"error rate >= {step.min_error_rate:g}"


def _top(types: Mapping[str, int]) -> str:
    if not types:
        return "no errors"
    items = sorted(types.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} x{v}" for k, v in items)


async def run_scenario(
    scenario: Scenario,
    start_federation: StartFederation,
    run_dir: Path,
    *,
    time_scale: float | None = None,
    auditor: Auditor | None = None,
    progress: Progress | None = None,
    client_factory: ClientFactory | None = None,
    revoke: Revoker | None = None,
    unrevoke: Revoker | None = None,
    sample_interval_real_s: float = 1.0,
    write_report: bool = True,
) -> RunResult:
    """Run ``scenario`` against a federation from ``start_federation``; write
    ``journal.json`` (and ``report.html``) into ``run_dir`` whatever happens.

    Exit code: 0 when every expectation and check holds, 1 otherwise (also when interrupted
    or when the run broke), 2 when the scenario does not fit the federation
    (:class:`ScenarioError`, raised again after the journal is written). Cancellation
    (Ctrl-C) propagates after the journal is written.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    scale = time_scale or scenario.time_scale
    run = _Run(
        scenario,
        run_dir,
        time_scale=scale,
        auditor=auditor,
        progress=progress,
        client_factory=client_factory,
        revoke=revoke,
        unrevoke=unrevoke,
        sample_interval_real_s=sample_interval_real_s,
    )
    kwargs: dict[str, Any] = {}
    if scenario.settings:
        kwargs["settings"] = dict(scenario.settings)
    invalid: ScenarioError | None = None
    try:
        async with start_federation(
            list(scenario.instances), run_dir, scale, scenario.seed, **kwargs
        ) as manifest:
            try:
                await run.main(manifest)
            except ScenarioError as exc:
                invalid = exc
        if invalid is not None:
            run.status, run.error = "invalid", str(invalid)
        else:
            run.status = "passed" if run.passed() else "failed"
    except BaseException as exc:
        if _is_cancel(exc):
            run.status = "interrupted"
        else:
            run.status = "error"
            run.error = "".join(traceback.format_exception(exc)).strip()
        raise
    finally:
        result = _write(run, run_dir, write_report)
    if invalid is not None:
        raise invalid
    return result


def _write(run: _Run, run_dir: Path, write_report: bool) -> RunResult:
    journal = run.journal()
    path = run_dir / "journal.json"
    path.write_text(json.dumps(journal, indent=1, default=str), encoding="utf-8")
    report = None
    if write_report:
        try:
            from federation.report import write_report as _write_report

            report = _write_report(journal, run_dir / "report.html")
        except Exception:  # the journal matters more than the report
            logger.exception("cannot write the HTML report")
    code = {"passed": 0, "invalid": 2}.get(run.status, 1)
    return RunResult(code, run.status, journal, path, report)
