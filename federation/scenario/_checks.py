"""Final checks of a run (pure functions over the journal's data; no I/O).

``no_central_broker``
    Message data must travel only between security servers. The runner samples the chaos
    proxies' byte counters once a second and, before starting the load, measures a
    *baseline* (no exchanges; only configuration downloads and OCSP/TSA traffic) long
    enough to include a configuration download. Central links are those of kind ``ss-cs``
    and ``cs-cs``. With ``idle_rate`` the baseline's central bytes per second, the
    traffic the load adds to central links is
    ``excess = central_bytes_during_load - idle_rate * load_duration``.
    The check fails when ``excess > tolerance * ss_ss_bytes_during_load + allowance``
    (``tolerance`` defaults to 0.05; ``allowance`` is twice the largest one-second burst on
    central links during the baseline, i.e. one configuration download that fell on the
    other side of a window edge). Configuration downloads are periodic, so they do not grow
    with the number of exchanges; a broker would add at least the message bytes again.
    It also fails when no bytes moved between security servers (nothing to judge).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from federation.scenario._manifest import CENTRAL_KINDS

RECORDS_PER_EXCHANGE = 4
DEFAULT_BROKER_TOLERANCE = 0.05


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
    """Cumulative bytes per link kind at real time ``t`` (seconds since the run origin)."""

    t: float
    by_kind: Mapping[str, int]


def _at(samples: Sequence[Sample], t: float) -> Sample:
    """The last sample taken at or before ``t`` (the first one if none)."""
    best = samples[0]
    for s in samples:
        if s.t <= t + 1e-9:
            best = s
        else:
            break
    return best


def _central(s: Sample) -> int:
    return sum(v for k, v in s.by_kind.items() if k in CENTRAL_KINDS)


def check_no_central_broker(
    samples: Sequence[Sample],
    *,
    baseline: tuple[float, float] | None,
    load: tuple[float, float] | None,
    tolerance: float | None = None,
    exchanges: int = 0,
) -> CheckResult:
    tol = DEFAULT_BROKER_TOLERANCE if tolerance is None else tolerance
    name = "no_central_broker"
    if len(samples) < 2:
        return CheckResult(name, False, "no chaos byte counters were sampled")
    if load is None or load[1] <= load[0]:
        return CheckResult(name, False, "no load ran, so there is nothing to judge")
    figures: dict[str, Any] = {"tolerance": tol, "exchanges": exchanges}
    idle_rate = 0.0
    allowance = 0
    if baseline is not None and baseline[1] > baseline[0]:
        b0, b1 = _at(samples, baseline[0]), _at(samples, baseline[1])
        span = b1.t - b0.t
        if span > 0:
            idle_rate = (_central(b1) - _central(b0)) / span
        inside = [s for s in samples if b0.t <= s.t <= b1.t]
        bursts = [_central(b) - _central(a) for a, b in itertools.pairwise(inside)]
        allowance = 2 * max(bursts, default=0)
        figures["baseline_s"] = round(span, 3)
    l0, l1 = _at(samples, load[0]), _at(samples, load[1])
    duration = max(l1.t - l0.t, 0.0)
    central = _central(l1) - _central(l0)
    ss = l1.by_kind.get("ss-ss", 0) - l0.by_kind.get("ss-ss", 0)
    excess = central - idle_rate * duration
    limit = tol * ss + allowance
    figures.update(
        {
            "load_s": round(duration, 3),
            "central_bytes": central,
            "central_idle_bytes_per_s": round(idle_rate, 1),
            "central_excess_bytes": round(excess),
            "allowance_bytes": allowance,
            "ss_ss_bytes": ss,
            "limit_bytes": round(limit),
        }
    )
    if exchanges:
        figures["ss_ss_bytes_per_exchange"] = round(ss / exchanges, 1)
        figures["central_bytes_per_exchange"] = round(central / exchanges, 1)
    if ss <= 0:
        return CheckResult(name, False, "no bytes moved between security servers", figures)
    if excess > limit:
        return CheckResult(
            name,
            False,
            f"central links carried {excess:.0f} bytes beyond their idle rate, more than "
            f"{tol:.0%} of the {ss} bytes exchanged between security servers",
            figures,
        )
    decisive = ss > limit
    figures["decisive"] = decisive
    note = (
        ""
        if decisive
        else f" (not decisive: the {ss} message bytes are within the configuration-download "
        f"noise of {limit:.0f} bytes; raise the load)"
    )
    return CheckResult(
        name,
        True,
        f"message data stayed between security servers ({ss} bytes); central links kept "
        f"their idle rate ({idle_rate:.0f} B/s, excess {max(excess, 0):.0f} B){note}",
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
