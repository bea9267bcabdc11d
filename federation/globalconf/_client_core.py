"""The configuration client's state machine (xroad.md sections 4 and 5), sans-IO.

A security server holds one verified copy per instance: its own (from the internal
directory, private + shared parameters) and one per federation partner that both its
central server trusts (an anchor in the private parameters) and its ``allowed-federations``
admits (from the partner's external directory, shared parameters only).

The shell asks :meth:`ConfClientCore.fetches` what to download, hands each downloaded
directory to :meth:`~ConfClientCore.check_directory`, the files to
:meth:`~ConfClientCore.accept`, and failures to :meth:`~ConfClientCore.fail`. A failure
never discards the last good copy; expiry does: the own copy expiring makes the server
*outdated* (the exchange answers ``OutdatedGlobalConf``), a partner's copy expiring drops
only that partner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from federation.clock import iso
from federation.errors import GlobalConfError
from federation.globalconf._directory import (
    PRIVATE_PARAMETERS,
    SHARED_PARAMETERS,
    DirectoryEntry,
    SignedDirectory,
    parse_signed_directory,
    verify_signed_directory,
)
from federation.globalconf._model import (
    ApprovedCA,
    ApprovedTSA,
    ConfigurationAnchor,
    PrivateParameters,
    SharedParameters,
)

Kind = Literal["internal", "external"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetch:
    """One directory to download: an instance, which directory, and its anchor."""

    instance: str
    kind: Kind
    anchor: ConfigurationAnchor

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(s.download_url for s in self.anchor.sources)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldConf:
    """A verified copy of one instance's configuration."""

    instance: str
    kind: Kind
    directory: SignedDirectory
    content_type: str
    body: bytes
    """The directory exactly as downloaded (re-verifiable offline)."""
    files: Mapping[str, bytes]
    """File bytes by content identifier."""
    shared: SharedParameters
    private: PrivateParameters | None
    downloaded_at: float
    source: str

    @property
    def expires(self) -> float:
        return self.directory.expire_date


@dataclass(slots=True)
class _Slot:
    kind: Kind
    held: HeldConf | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    source: str | None = None
    attempts: int = 0
    rejections: int = 0


@dataclass(slots=True)
class ConfClientCore:
    """State of one security server's configuration client (no I/O, no clock)."""

    anchor: ConfigurationAnchor
    """The own instance's (internal) anchor, ``/etc/xroad/configuration-anchor.xml``."""
    admits: Callable[[str], bool]
    """``allowed-federations``: whether a partner instance may be downloaded."""
    server_id: str | None = None
    _slots: dict[str, _Slot] = field(default_factory=dict)

    @property
    def instance(self) -> str:
        return self.anchor.instance

    # -- planning ------------------------------------------------------------------------

    def own_fetch(self) -> Fetch:
        return Fetch(instance=self.instance, kind="internal", anchor=self.anchor)

    def partner_fetches(self) -> list[Fetch]:
        """Trusted anchors from the held private parameters that allowed-federations admits.

        Also forgets partners no longer listed or admitted (client procedure step 6).
        """
        own = self._slots.get(self.instance)
        anchors = own.held.private.anchors if own and own.held and own.held.private else ()
        out = [
            Fetch(instance=a.instance, kind="external", anchor=a)
            for a in anchors
            if a.instance != self.instance and self.admits(a.instance)
        ]
        wanted = {f.instance for f in out}
        for inst in [i for i in self._slots if i != self.instance and i not in wanted]:
            del self._slots[inst]
        return out

    def _slot(self, fetch: Fetch) -> _Slot:
        slot = self._slots.get(fetch.instance)
        if slot is None:
            slot = self._slots[fetch.instance] = _Slot(kind=fetch.kind)
        return slot

    # -- processing ------------------------------------------------------------------------

    def check_directory(
        self, fetch: Fetch, content_type: str, body: bytes, *, now: float, source: str
    ) -> SignedDirectory:
        """Parse and verify a downloaded directory; GlobalConfError says why it is rejected.

        Checks: the signature against the anchor, ``Expire-date`` in the future, the
        instance of every entry, that it lists what this kind of directory must list, and
        that it is not older than the copy held (a replay).
        """
        slot = self._slot(fetch)
        slot.last_attempt = now
        slot.source = source
        slot.attempts += 1
        directory = parse_signed_directory(content_type, body)
        verify_signed_directory(directory, anchor=fetch.anchor, now=now)
        if directory.entry(SHARED_PARAMETERS) is None:
            raise GlobalConfError("directory lists no SHARED-PARAMETERS", instance=fetch.instance)
        if fetch.kind == "internal" and directory.entry(PRIVATE_PARAMETERS) is None:
            raise GlobalConfError(
                "internal directory lists no PRIVATE-PARAMETERS", instance=fetch.instance
            )
        held = slot.held
        if held is not None and directory.serial < held.directory.serial:
            raise GlobalConfError(
                f"older configuration replayed (serial {directory.serial} < held "
                f"{held.directory.serial})",
                instance=fetch.instance,
            )
        return directory

    def wanted_entries(self, fetch: Fetch, directory: SignedDirectory) -> list[DirectoryEntry]:
        """The entries to download: shared parameters, plus private ones for the own
        instance. A partner's private parameters are never used."""
        idents = [SHARED_PARAMETERS] + ([PRIVATE_PARAMETERS] if fetch.kind == "internal" else [])
        return [e for e in directory.entries if e.content_identifier in idents]

    def cached_file(self, fetch: Fetch, entry: DirectoryEntry) -> bytes | None:
        """The held bytes of ``entry`` if unchanged (client procedure step 4)."""
        slot = self._slots.get(fetch.instance)
        if slot is None or slot.held is None:
            return None
        data = slot.held.files.get(entry.content_identifier)
        if data is None:
            return None
        try:
            entry.check(data)
        except GlobalConfError:
            return None
        return data

    def accept(
        self,
        fetch: Fetch,
        directory: SignedDirectory,
        files: Mapping[str, bytes],
        *,
        content_type: str,
        body: bytes,
        now: float,
        source: str,
    ) -> HeldConf:
        """Check the files against the directory and keep them as the new good copy.

        ``files`` maps content identifiers to bytes. GlobalConfError if a hash or an
        instance id does not match.
        """
        inst = fetch.instance
        for e in self.wanted_entries(fetch, directory):
            data = files.get(e.content_identifier)
            if data is None:
                raise GlobalConfError(f"{e.content_identifier} was not downloaded", instance=inst)
            e.check(data)
        shared = SharedParameters.from_bytes(files[SHARED_PARAMETERS])
        if shared.instance != inst:
            raise GlobalConfError(
                f"shared parameters are of instance {shared.instance!r}", instance=inst
            )
        private = None
        if fetch.kind == "internal":
            private = PrivateParameters.from_bytes(files[PRIVATE_PARAMETERS])
            if private.instance != inst:
                raise GlobalConfError(
                    f"private parameters are of instance {private.instance!r}", instance=inst
                )
        held = HeldConf(
            instance=inst,
            kind=fetch.kind,
            directory=directory,
            content_type=content_type,
            body=body,
            files={k: files[k] for k in files if k in (SHARED_PARAMETERS, PRIVATE_PARAMETERS)},
            shared=shared,
            private=private,
            downloaded_at=now,
            source=source,
        )
        slot = self._slot(fetch)
        slot.held = held
        slot.last_error = None
        return held

    def fail(self, fetch: Fetch, error: str, *, now: float, rejected: bool) -> None:
        """Record a failed download (``rejected``: it arrived but failed verification)."""
        slot = self._slot(fetch)
        slot.last_attempt = now
        slot.last_error = error
        if rejected:
            slot.rejections += 1

    def restore(self, held: HeldConf) -> None:
        """Adopt a copy read back from disk (already re-verified by the caller)."""
        self._slots[held.instance] = _Slot(kind=held.kind, held=held, source=held.source)

    # -- queries -------------------------------------------------------------------------

    def held(self, instance: str) -> HeldConf | None:
        slot = self._slots.get(instance)
        return slot.held if slot else None

    def own_expires(self) -> float | None:
        held = self.held(self.instance)
        return held.expires if held else None

    def is_outdated(self, now: float) -> bool:
        """True when no valid own configuration is held (``now >= Expire-date``)."""
        expires = self.own_expires()
        return expires is None or now >= expires

    def shared_parameters(self, instance: str, now: float) -> SharedParameters | None:
        """The instance's shared parameters, or None when not held or expired."""
        held = self.held(instance)
        if held is None or now >= held.expires:
            return None
        return held.shared

    def instances(self, now: float) -> list[str]:
        """Instances whose configuration is currently valid, own first."""
        out = [i for i in self._slots if self.shared_parameters(i, now) is not None]
        return sorted(out, key=lambda i: (i != self.instance, i))

    def private_parameters(self, now: float) -> PrivateParameters | None:
        held = self.held(self.instance)
        if held is None or now >= held.expires:
            return None
        return held.private

    def approved_cas(self, instance: str, now: float) -> tuple[ApprovedCA, ...]:
        shared = self.shared_parameters(instance, now)
        return shared.approved_cas if shared else ()

    def approved_tsas(self, now: float) -> tuple[ApprovedTSA, ...]:
        """The own instance's TSAs (a server time-stamps with its own instance's TSAs)."""
        shared = self.shared_parameters(self.instance, now)
        return shared.approved_tsas if shared else ()

    def ocsp_freshness_s(self, now: float) -> float | None:
        """The own instance's ``ocspFreshnessSeconds`` (used for every peer, xroad.md 5)."""
        shared = self.shared_parameters(self.instance, now)
        return shared.global_settings.ocsp_freshness_s if shared else None

    def timestamping_interval_s(self, now: float) -> float | None:
        private = self.private_parameters(now)
        return private.timestamping_interval_s if private else None

    def status(self, now: float) -> dict[str, Any]:
        """A JSON-able report, per instance: expires, verified, last download, last error."""
        confs: dict[str, Any] = {}
        for inst, slot in sorted(
            self._slots.items(), key=lambda kv: (kv[0] != self.instance, kv[0])
        ):
            held = slot.held
            confs[inst] = {
                "kind": slot.kind,
                "verified": held is not None,
                "expires": iso(held.expires) if held else None,
                "expired": held is None or now >= held.expires,
                "serial": held.directory.serial if held else None,
                "downloaded_at": iso(held.downloaded_at) if held else None,
                "last_attempt": iso(slot.last_attempt) if slot.last_attempt is not None else None,
                "last_error": slot.last_error,
                "source": slot.source,
                "rejections": slot.rejections,
            }
        own = self.own_expires()
        return {
            "security_server": self.server_id,
            "instance": self.instance,
            "at": iso(now),
            "outdated": self.is_outdated(now),
            "own_expires": iso(own) if own is not None else None,
            "globalconf": confs,
        }
