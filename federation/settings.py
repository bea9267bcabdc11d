"""X-Road timers with X-Road's defaults, and ``time_scale`` (reference xroad.md section 6).

Every duration an instance uses comes from :class:`Timers`. ``time_scale: N`` divides each
of them by N (proportions kept), so a 600 s configuration expiry passes in 10 s at N=60.
Wall-clock timestamps stay real; only durations shrink (see :mod:`federation.clock`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True, slots=True, kw_only=True)
class Timers:
    """X-Road timer settings in seconds (X-Road time, before scaling)."""

    conf_expire_s: float = 600.0
    """``confExpireIntervalSeconds``: a configuration directory's validity after generation."""
    conf_generation_s: float = 60.0
    """``global-configuration-generation-rate-in-seconds``: central server regeneration."""
    conf_update_s: float = 60.0
    """``configuration-client.update-interval``: security server download period."""
    ocsp_freshness_s: float = 3600.0
    """``ocspFreshnessSeconds``: an OCSP response older than this is rejected."""
    ocsp_fetch_interval_s: float = 1200.0
    """``ocspFetchInterval``: how often a security server refreshes its OCSP responses."""
    ocsp_retry_delay_s: float = 60.0
    """``ocsp-retry-delay``: retry period after a failed OCSP fetch."""
    ocsp_validity_s: float = 3600.0
    """The responder's ``nextUpdate - thisUpdate`` (a CA setting, not an X-Road one)."""
    timestamping_interval_s: float = 60.0
    """``timeStampingIntervalSeconds``: batch time-stamping period."""
    timestamp_retry_delay_s: float = 60.0
    """``timestamp-retry-delay``: retry period after a failed time-stamping attempt."""
    timestamp_failure_period_s: float = 14400.0
    """``acceptable-timestamp-failure-period``: refuse messages after failing this long."""

    def scaled(self, time_scale: float) -> Timers:
        """These timers divided by ``time_scale`` (must be > 0)."""
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        return replace(self, **{f.name: getattr(self, f.name) / time_scale for f in fields(self)})

    def to_json(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


TIMER_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Timers))
