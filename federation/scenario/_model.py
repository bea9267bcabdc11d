"""The scenario model: frozen dataclasses built by :mod:`federation.scenario._loader`.

Durations are floats in seconds of **scenario time** (X-Road time) unless the name ends in
``_real_s``; the interpreter divides scenario time by ``time_scale`` to get wall-clock time.
Every step keeps ``path`` (its YAML path, e.g. ``steps[3]``) so the journal can point back
into the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSpec:
    """One X-Road REST call: ``client`` calls ``service`` at ``path`` (``url`` instead of
    ``service``+``path`` addresses the client's security server directly, for metaservices)."""

    client: str
    service: str | None = None
    path: str = ""
    url: str | None = None
    method: str = "GET"
    body_bytes: int = 0
    weight: float = 1.0
    via: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec:
    """Background load for the whole scenario: ``rate`` (open loop, requests per second of
    wall-clock time) or ``concurrency`` (closed loop)."""

    rate: float | None = None
    concurrency: int | None = None
    calls: tuple[CallSpec, ...]
    workers: int = 32
    timeout_real_s: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Filter:
    """Which requests a window looks at. ``direction`` is ``EE->FI``, ``EE`` (within EE),
    ``cross`` (any cross-border) or ``intra`` (any within one instance)."""

    direction: str | None = None
    client: str | None = None
    service: str | None = None

    def to_json(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("direction", self.direction),
                ("client", self.client),
                ("service", self.service),
            )
            if v is not None
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StepBase:
    index: int
    path: str
    note: str | None = None
    raw: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestStep(StepBase):
    call: CallSpec
    headers: tuple[tuple[str, str], ...] = ()
    status: int | None = None
    error: str | None = None
    body_contains: tuple[str, ...] = ()
    within_s: float | None = None
    kind: str = "request"


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitStep(StepBase):
    duration_s: float
    kind: str = "wait"


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyFault:
    ms: int
    jitter_ms: int = 0
    link: str | None = None
    between: tuple[str, str] | None = None
    stream: str = "both"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionFault:
    """Every proxy leading to ``target``; with ``source``, only those coming from that
    component or instance."""

    target: str
    source: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeFault:
    instance: str
    cert: str  # "auth" | "sign"
    of: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToxicFault:
    type: str
    attributes: tuple[tuple[str, int], ...] = ()
    link: str | None = None
    between: tuple[str, str] | None = None
    stream: str = "both"


FaultSpec = LatencyFault | PartitionFault | RevokeFault | ToxicFault


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultStep(StepBase):
    name: str | None
    fault: FaultSpec
    kind: str = "fault"

    @property
    def fault_kind(self) -> str:
        return {
            LatencyFault: "latency",
            PartitionFault: "partition",
            RevokeFault: "revoke",
            ToxicFault: "toxic",
        }[type(self.fault)]


@dataclass(frozen=True, slots=True, kw_only=True)
class HealStep(StepBase):
    names: tuple[str, ...] = ()
    all: bool = False
    kind: str = "heal"


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitUntilStep(StepBase):
    """Wait until an error type is seen, or until the error rate over a sliding window is at
    most ``error_rate``; fail after ``within_s``."""

    within_s: float
    error: str | None = None
    error_rate: float | None = None
    min_error_rate: float | None = None
    window_s: float = 10.0
    min_requests: int = 10
    filter: Filter = field(default_factory=Filter)
    kind: str = "wait_until"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectStep(StepBase):
    """Observe the next ``window_s`` and check what happened in it."""

    window_s: float
    error_rate: float | None = None
    min_error_rate: float | None = None
    errors_seen: tuple[str, ...] = ()
    errors_absent: tuple[str, ...] = ()
    p50_ms: float | None = None
    p99_ms: float | None = None
    min_p50_ms: float | None = None
    vs: int | None = None
    """Index of an earlier expect step whose p50 the rise bounds compare with."""
    min_p50_rise_ms: float | None = None
    max_p50_rise_ms: float | None = None
    min_requests: int = 1
    filter: Filter = field(default_factory=Filter)
    kind: str = "expect"


Step = RequestStep | WaitStep | FaultStep | HealStep | WaitUntilStep | ExpectStep

CHECK_NAMES: tuple[str, ...] = (
    "no_lost_messages",
    "timestamped",
    "evidence_verifies",
    "steady_state",
    "no_central_broker",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckSpec:
    name: str
    path: str
    window_s: float | None = None
    within_s: float | None = None
    min_requests: int | None = None
    tolerance: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    file: Path
    instances: tuple[Path, ...]
    description: str = ""
    seed: int = 0
    time_scale: float = 1.0
    settings: tuple[tuple[str, float], ...] = ()
    load: LoadSpec | None = None
    steps: tuple[Step, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    raw: Any = None

    def check(self, name: str) -> CheckSpec | None:
        for c in self.checks:
            if c.name == name:
                return c
        return None
