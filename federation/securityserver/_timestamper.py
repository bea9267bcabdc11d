"""The batch time-stamper: a trio task that stamps the message log's hash chain.

Every ``interval_s`` (X-Road's ``timeStampingIntervalSeconds``), when records wait, it
sends an RFC 3161 query over the latest chain value (:meth:`MessageLog.next_batch`) to the
instance's TSA URLs **in order** (``approvedTSA`` order, as X-Road tries them), verifies
the token against the TSA's trust roots and stores it. When every TSA fails the attempt is
recorded (:meth:`MessageLog.record_timestamp_failure`) and the next one comes after
``retry_s`` (``timestamp-retry-delay``). All durations are already scaled by the caller.
"""

from __future__ import annotations

import logging
import random
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import trio
from cryptography import x509

from federation.clock import Clock
from federation.errors import FederationError
from federation.http import HttpClient, HttpClientResponse
from federation.pki import build_ts_query, parse_ts_reply, verify_ts_token
from federation.securityserver._messagelog import MessageLog, TimestampRecord

logger = logging.getLogger(__name__)

__all__ = ["TimestampOutcome", "run_timestamper", "timestamp_once"]

UrlSource = Sequence[str] | Callable[[], Sequence[str]]
RootSource = Sequence[x509.Certificate] | Callable[[], Sequence[x509.Certificate]]


class Requester(Protocol):
    """The one method of :class:`federation.http.HttpClient` the time-stamper uses."""

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        timeout_s: float | None = None,
    ) -> HttpClientResponse: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TimestampOutcome:
    """What one attempt did: ``stamped`` (with the record), ``idle`` or ``failed``."""

    result: Literal["stamped", "idle", "failed"]
    record: TimestampRecord | None = None
    errors: tuple[str, ...] = ()


def _urls(src: UrlSource) -> list[str]:
    return list(src() if callable(src) else src)


def _roots(src: RootSource) -> list[x509.Certificate]:
    return list(src() if callable(src) else src)


def _split_url(url: str) -> tuple[str, int, str]:
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise FederationError(f"unsupported TSA URL {url!r} (expected http://host:port/...)")
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return u.hostname, u.port or 80, target


async def timestamp_once(
    log: MessageLog,
    tsa_urls: UrlSource,
    *,
    clock: Clock,
    trusted_roots: RootSource,
    http: Requester,
    intermediates: Sequence[x509.Certificate] = (),
    url_map: Callable[[str], str] | None = None,
    limit: int = 10000,
    timeout_s: float = 30.0,
    rng: random.Random | None = None,
) -> TimestampOutcome:
    """One time-stamping attempt over the pending records (see the module docstring)."""
    batch = log.next_batch(limit)
    if batch is None:
        return TimestampOutcome(result="idle")
    rng = rng or random.Random()
    errors: list[str] = []
    urls = _urls(tsa_urls)
    if not urls:
        errors.append("no time-stamping authority configured")
    for url in urls:
        nonce = rng.getrandbits(63)
        query = build_ts_query(digest=batch.chain, hash_alg="sha512", nonce=nonce)
        try:
            host, port, target = _split_url(url_map(url) if url_map else url)
            resp = await http.request(
                host,
                port,
                "POST",
                target,
                headers=[("Content-Type", "application/timestamp-query")],
                body=query,
                timeout_s=timeout_s,
            )
            if resp.status != 200:
                raise FederationError(f"HTTP {resp.status}")
            token = parse_ts_reply(resp.body, nonce=nonce)
            gen_time = verify_ts_token(
                token,
                digest=batch.chain,
                hash_alg="sha512",
                trusted_roots=_roots(trusted_roots),
                intermediates=intermediates,
            )
        except FederationError as exc:
            errors.append(f"{url}: {exc}")
            logger.info("time-stamping at %s failed: %s", url, exc)
            continue
        record = log.record_timestamp(
            batch.last_record, token, gen_time, now=clock.now(), tsa_url=url
        )
        logger.debug(
            "time-stamped records %d..%d at %s", batch.first_record, batch.last_record, url
        )
        return TimestampOutcome(result="stamped", record=record, errors=tuple(errors))
    log.record_timestamp_failure(clock.now(), "; ".join(errors))
    return TimestampOutcome(result="failed", errors=tuple(errors))


async def run_timestamper(
    log: MessageLog,
    tsa_urls: UrlSource,
    *,
    interval_s: float,
    retry_s: float,
    clock: Clock,
    trusted_roots: RootSource,
    http: Requester | None = None,
    intermediates: Sequence[x509.Certificate] = (),
    url_map: Callable[[str], str] | None = None,
    limit: int = 10000,
    timeout_s: float = 30.0,
    seed: int | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Stamp the log every ``interval_s`` (``retry_s`` after a failure) until cancelled.

    ``tsa_urls`` and ``trusted_roots`` may be callables, re-read on every attempt (they come
    from the global configuration, which changes). ``url_map`` rewrites a TSA URL (e.g. to
    its chaos link). ``seed`` makes the query nonces reproducible.
    """
    own = HttpClient() if http is None else None
    client: Requester = own or http  # type: ignore[assignment]
    rng = random.Random(seed)
    task_status.started()
    try:
        while True:
            outcome = await timestamp_once(
                log,
                tsa_urls,
                clock=clock,
                trusted_roots=trusted_roots,
                http=client,
                intermediates=intermediates,
                url_map=url_map,
                limit=limit,
                timeout_s=timeout_s,
                rng=rng,
            )
            if outcome.record is not None and (
                outcome.record.last_record - outcome.record.first_record + 1 >= limit
            ):
                await trio.lowlevel.checkpoint()  # a full batch: more may be waiting
                continue
            await trio.sleep(retry_s if outcome.result == "failed" else interval_s)
    finally:
        if own is not None:
            with trio.CancelScope(shield=True):
                await own.aclose()
