"""Final checks of a run (pure functions over the journal's data; no I/O).

``no_central_broker``
    Message data must travel only between security servers; a central server only serves
    configuration. Judged on every central link (``ss-cs``, ``cs-cs``) on its own, with the
    chaos proxies' per-link byte counters. Before the load the runner measures a *baseline*
    (no exchanges) with dense samples, in which each configuration download on a link shows
    as one burst: the largest burst (plus ``DOWNLOAD_SLACK_BYTES``) is the link's download
    size. A security server starts a download round at most once per ``conf_update_s``, so
    while the load runs a link can carry at most ``floor(up / period) + 1`` downloads per
    interval it was up (partitions excluded) plus one that straddled the start; a ``cs-cs``
    link carries nothing (partners' configuration is fetched at anchor upload). A link that
    carried more than that many downloads (plus ``tolerance`` times the run's exchanges of
    the mean SS<->SS exchange size; default 0) fails the check. The check also fails, as
    *inconclusive*, when it cannot claim the property: no baseline, a link without a
    download to size in the baseline, a ``cs-cs`` link that moved bytes with no load, or a
    link whose allowance left room to hide more than ``MAX_HIDDEN_EXCHANGES`` exchanges
    (plus the tolerance). Figures per link: bytes, download size, most downloads, excess,
    ``hidden_exchanges`` (how many exchanges could still have hidden in the allowance).

``no_lost_messages``, ``evidence_verifies``, ``timestamped``
    Judge the result of an auditor ``audit(run_dir) -> dict`` over the message logs
    (``records``, ``verified``, ``awaiting_timestamp``, ``orphaned``, ``failed``; optionally
    ``unanswered``/``incomplete`` (records of exchanges that failed in transit),
    ``unstamped``, ``complete_ids``, ``complete_exchanges`` + ``not_clean``, ``xroad_ids`` or
    ``exchanges``; as :func:`federation.evidence.audit_run` returns) against the journal's
    successful exchanges:

    * ``no_lost_messages``: every successful exchange is on both sides' logs and nothing is
      orphaned. With ``complete_ids`` (request and response clean on both sides) every
      successful request's ``X-Road-Id`` must be among them and their number must reach the
      journal's; else with ``xroad_ids`` every id must be listed; else with
      ``complete_exchanges`` the count must reach the journal's and no successful id may be
      in ``not_clean``; else with ``exchanges`` the count must reach the journal's; else
      ``records`` must reach ``RECORDS_PER_EXCHANGE`` (request + response, logged by both
      servers) per exchange. ``orphaned`` must be 0: the auditor keeps that status for
      records that break the pairing of an exchange that succeeded (or a provider's record
      whose client request is gone); exchanges that failed in transit (``unanswered``,
      ``incomplete``) are reported, not lost.
    * ``evidence_verifies``: ``failed == 0``: no record's signature, hash chain or
      time-stamp fails (records awaiting a time-stamp and records of exchanges that failed
      in transit are reported, not failures).
    * ``timestamped``: ``unstamped`` (else ``awaiting_timestamp``) == 0: every record, of
      any status, is covered by a time-stamp (the runner polls the auditor until the batch
      time-stamper caught up, or ``within`` passes).

``steady_state`` is evaluated live by the interpreter (it needs the load running).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RECORDS_PER_EXCHANGE = 4
DEFAULT_BROKER_TOLERANCE = 0.0
MAX_HIDDEN_EXCHANGES = 3.0
"""``no_central_broker`` claims the property only when a leak of this many exchanges (plus
``tolerance`` times the run's exchanges) through any single central link would fail it."""
DOWNLOAD_SLACK_BYTES = 32
"""Allowed growth of one configuration download over the largest seen in the baseline
(serial numbers and dates in the signed directory gain digits)."""


@dataclass(slots=True)
class CheckResult:
    name: str
    passed: bool
    message: str
    figures: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "passed": self.passed,
            "message": self.message,
            "figures": self.figures,
        }


@dataclass(frozen=True, slots=True)
class Sample:
    """Cumulative bytes per link kind (and per link: upstream + downstream) at real time
    ``t`` (seconds since the run origin)."""

    t: float
    by_kind: Mapping[str, int]
    by_link: Mapping[str, int] = field(default_factory=dict)


def _at(samples: Sequence[Sample], t: float) -> Sample:
    """The last sample taken at or before ``t`` (the first one if none)."""
    best = samples[0]
    for s in samples:
        if s.t <= t + 1e-9:
            best = s
        else:
            break
    return best


def _after(samples: Sequence[Sample], t: float) -> Sample:
    """The first sample taken at or after ``t`` (the last one if none)."""
    for s in samples:
        if s.t >= t - 1e-9:
            return s
    return samples[-1]


@dataclass(frozen=True, slots=True)
class CentralLink:
    """A chaos link to a central server, as ``no_central_broker`` models it.

    ``period_s``: the configuration-download period (``conf_update_s``, wall-clock seconds)
    of the security server the link starts at; ``None`` for a link that carries nothing
    once the federation is up (``cs-cs``: a central server downloads a partner's
    configuration only when an anchor is uploaded). ``down``: wall-clock intervals in which
    the link was partitioned (it carries nothing then).
    """

    name: str
    kind: str
    period_s: float | None
    down: tuple[tuple[float, float], ...] = ()


def _up_intervals(
    a: float, b: float, down: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """``[a, b]`` minus the ``down`` intervals."""
    out = [(a, b)]
    for d0, d1 in down:
        nxt = []
        for u0, u1 in out:
            if d1 <= u0 or d0 >= u1:
                nxt.append((u0, u1))
                continue
            if d0 > u0:
                nxt.append((u0, d0))
            if d1 < u1:
                nxt.append((d1, u1))
        out = nxt
    return [(u0, u1) for u0, u1 in out if u1 > u0]


def download_sizes(
    samples: Sequence[Sample], link: str, a: float, b: float, gap: float
) -> list[int]:
    """The bytes of each whole configuration download on ``link`` between ``a`` and ``b``,
    from densely taken samples. Growth of the counter that starts more than ``gap`` seconds
    after the start of the previous download begins a new one, so a request and its
    response that fall into different samples stay one download (downloads on a link are a
    period apart). A download that begins within ``gap`` of either end may be cut by it and
    is left out."""
    inside = [s for s in samples if a - 1e-9 <= s.t <= b + 1e-9]
    groups: list[tuple[float, int]] = []  # (start, bytes)
    for x, y in itertools.pairwise(inside):
        inc = y.by_link.get(link, 0) - x.by_link.get(link, 0)
        if inc <= 0:
            continue
        if not groups or y.t - groups[-1][0] > gap:
            groups.append((x.t, inc))
        else:
            groups[-1] = (groups[-1][0], groups[-1][1] + inc)
    return [n for t0, n in groups if t0 >= a + gap and t0 + gap <= b]


def check_no_central_broker(
    samples: Sequence[Sample],
    *,
    baseline: tuple[float, float] | None,
    load: tuple[float, float] | None,
    links: Sequence[CentralLink],
    exchanges: int = 0,
    tolerance: float | None = None,
) -> CheckResult:
    """Judge every central link on its own: it may carry its configuration downloads and
    nothing else (see the module docstring and docs/scenarios.md)."""
    tol = DEFAULT_BROKER_TOLERANCE if tolerance is None else tolerance
    name = "no_central_broker"
    if len(samples) < 2:
        return CheckResult(name, False, "no chaos byte counters were sampled")
    if load is None or load[1] <= load[0]:
        return CheckResult(name, False, "no load ran, so there is nothing to judge")
    if not links:
        return CheckResult(name, False, "inconclusive: the federation has no central links")
    s0, s1 = _at(samples, load[0]), _after(samples, load[1])
    a, b = s0.t, s1.t
    ss = s1.by_kind.get("ss-ss", 0) - s0.by_kind.get("ss-ss", 0)
    figures: dict[str, Any] = {
        "tolerance": tol,
        "exchanges": exchanges,
        "load_s": round(b - a, 3),
        "ss_ss_bytes": ss,
    }
    if ss <= 0 or exchanges <= 0:
        return CheckResult(
            name, False, "no exchanges between security servers, nothing to judge", figures
        )
    per_exchange = ss / exchanges
    figures["exchange_bytes"] = round(per_exchange)
    # a leak of more than this many exchanges on one link must fail the check
    hidden_max = MAX_HIDDEN_EXCHANGES + tol * exchanges
    figures["max_hidden_exchanges"] = round(hidden_max, 2)
    if baseline is None or baseline[1] <= baseline[0]:
        return CheckResult(
            name,
            False,
            "inconclusive: no baseline was measured, so configuration downloads cannot be sized",
            figures,
        )
    figures["baseline_s"] = round(baseline[1] - baseline[0], 3)
    per_link: dict[str, dict[str, Any]] = {}
    leaks: list[str] = []
    blind: list[str] = []
    central = 0
    for lk in sorted(links, key=lambda x: x.name):
        got = s1.by_link.get(lk.name, 0) - s0.by_link.get(lk.name, 0)
        central += got
        up = _up_intervals(a, b, lk.down)
        row: dict[str, Any] = {"kind": lk.kind, "bytes": got}
        if lk.down:
            row["up_s"] = round(sum(u1 - u0 for u0, u1 in up), 3)
        if lk.period_s is None:
            idle = _at(samples, baseline[1]).by_link.get(lk.name, 0) - _at(
                samples, baseline[0]
            ).by_link.get(lk.name, 0)
            downloads, size = 0, 0
            why = f"{lk.name} carried {idle} bytes in the baseline, with no load" if idle else ""
        else:
            sizes = download_sizes(samples, lk.name, *baseline, gap=lk.period_s / 2)
            row["baseline_downloads"] = len(sizes)
            size = max(sizes, default=0) + DOWNLOAD_SLACK_BYTES
            # rounds start at least period_s apart: at most floor(u / period) + 1 in an
            # interval of length u, plus one that began before the load and ended in it,
            # plus one per partition (its recorded edges precede the proxies' by the API
            # call)
            cuts = sum(1 for d0, d1 in lk.down if d1 > a and d0 < b)
            downloads = sum(math.floor((u1 - u0) / lk.period_s) + 1 for u0, u1 in up) + 1 + cuts
            why = (
                ""
                if sizes
                else f"no whole configuration download on {lk.name} in the baseline to size one"
            )
        per_link[lk.name] = row
        if why:  # the model of this link does not hold: not judged
            blind.append(why)
            continue
        expected = downloads * size
        allowed = expected + tol * exchanges * per_exchange
        excess = got - expected
        hidden = (allowed - got) / per_exchange
        row.update(
            {
                "download_bytes": size,
                "downloads_max": downloads,
                "expected_max_bytes": expected,
                "excess_bytes": excess,
                "hidden_exchanges": round(hidden, 2),
            }
        )
        if got > allowed:
            leaks.append(
                f"{lk.name} carried {got} bytes, {excess} more than its at most {downloads} "
                f"configuration downloads of {size} bytes (~{excess / per_exchange:.1f} "
                "exchanges)"
            )
        elif hidden > hidden_max:
            blind.append(
                f"{lk.name} could hide {hidden:.1f} exchanges within its download allowance"
            )
    figures["central_bytes"] = central
    figures["links"] = per_link
    judged = {k: r for k, r in per_link.items() if "hidden_exchanges" in r}
    worst = max(judged.items(), key=lambda kv: kv[1]["hidden_exchanges"], default=None)
    if worst is not None:
        figures["worst_link"] = worst[0]
        figures["worst_hidden_exchanges"] = worst[1]["hidden_exchanges"]
    figures["conclusive"] = not blind
    if leaks:
        return CheckResult(
            name,
            False,
            "message-sized traffic through a central server: " + "; ".join(leaks),
            figures,
        )
    if blind or worst is None:
        return CheckResult(
            name, False, "inconclusive, cannot claim the property: " + "; ".join(blind), figures
        )
    return CheckResult(
        name,
        True,
        f"every central link carried only its configuration downloads ({len(per_link)} links, "
        f"{central} bytes; {ss} bytes between security servers, {per_exchange:.0f} per "
        f"exchange); at most {worst[1]['hidden_exchanges']:g} exchanges could have hidden on "
        f"one link ({worst[0]}), so a leak of {hidden_max:g} on any link would have failed",
        figures,
    )


def check_audit(
    name: str, audit: Mapping[str, Any] | None, *, ok_ids: Sequence[str], exchanges: int
) -> CheckResult:
    """Judge one of the evidence checks on an auditor result (None: no auditor)."""
    if audit is None:
        return CheckResult(name, False, "no message-log auditor is available for this run")
    figures = {
        k: audit.get(k)
        for k in (
            "records",
            "verified",
            "awaiting_timestamp",
            "unanswered",
            "incomplete",
            "orphaned",
            "failed",
            "exchanges",
            "complete_exchanges",
            "unanswered_exchanges",
            "incomplete_exchanges",
        )
        if k in audit
    }
    figures["journal_exchanges"] = exchanges
    damaged = list(audit.get("damaged_logs") or [])
    if damaged:
        # a log that cannot be read (in part) proves nothing about what it held
        figures["damaged_logs"] = damaged
        return CheckResult(
            name, False, f"message logs that cannot be read: {', '.join(damaged)}", figures
        )
    records = int(audit.get("records", 0))
    if name == "no_lost_messages":
        orphaned = int(audit.get("orphaned", 0))
        if "complete_ids" in audit:
            complete = set(audit["complete_ids"])
            missing = [i for i in ok_ids if i not in complete]
            figures["missing"] = missing[:20]
            # exchanges the logs show as complete although the journal saw them fail (the
            # caller gave up, e.g. a timeout, after the client's server logged the answer)
            figures["complete_not_in_journal"] = len(complete - set(ok_ids))
            lost = max(len(missing), exchanges - len(complete))
        elif "xroad_ids" in audit:
            logged = set(audit["xroad_ids"])
            missing = [i for i in ok_ids if i not in logged]
            figures["missing"] = missing[:20]
            figures["missing_count"] = len(missing)
            lost = len(missing)
        elif "complete_exchanges" in audit:
            broken = sorted(set(ok_ids) & set(audit.get("not_clean") or []))
            figures["not_clean"] = broken[:20]
            lost = max(0, exchanges - int(audit["complete_exchanges"]), len(broken))
        elif "exchanges" in audit:
            lost = max(0, exchanges - int(audit["exchanges"]))
        else:
            lost = max(0, exchanges - records // RECORDS_PER_EXCHANGE)
        if lost or orphaned:
            return CheckResult(
                name,
                False,
                f"{lost} successful exchanges missing from the message logs, {orphaned} "
                "records orphaned",
                figures,
            )
        in_transit = int(audit.get("unanswered_exchanges", 0)) + int(
            audit.get("incomplete_exchanges", 0)
        )
        extra = f"; {in_transit} exchanges failed in transit" if in_transit else ""
        more = figures.get("complete_not_in_journal", 0)
        if isinstance(more, int) and more:
            extra += (
                f"; {more} more complete in the logs than the journal saw succeed (legs a "
                "provider made through X-Road, or calls whose caller gave up)"
            )
        return CheckResult(
            name,
            True,
            f"all {exchanges} successful exchanges are logged on both sides, 0 orphaned{extra}",
            figures,
        )
    if name == "evidence_verifies":
        failed = int(audit.get("failed", 0))
        verified = int(audit.get("verified", 0))
        pending = int(audit.get("awaiting_timestamp", 0))
        orphaned = int(audit.get("orphaned", 0))
        in_transit = int(audit.get("unanswered", 0)) + int(audit.get("incomplete", 0))
        detail = f"{verified} verified, {pending} awaiting a time-stamp, {orphaned} orphaned"
        if in_transit:
            detail += f", {in_transit} of exchanges that failed in transit"
        if failed:
            return CheckResult(
                name, False, f"{failed} records failed verification ({detail})", figures
            )
        return CheckResult(name, True, f"no record failed verification ({detail})", figures)
    if name == "timestamped":
        pending = int(audit.get("unstamped", audit.get("awaiting_timestamp", 0)))
        figures["unstamped"] = pending
        if pending:
            return CheckResult(name, False, f"{pending} records still await a time-stamp", figures)
        return CheckResult(name, True, f"all {records} records are time-stamped", figures)
    raise ValueError(name)
