"""The CMS verification fast path (cached signature templates) decides exactly as the full
path: every single-byte change of a signature, a changed content, other roots, another time."""

from __future__ import annotations

import pytest

from federation.errors import PkiError
from federation.pki import _cms, cms_sign_detached, cms_verify_detached

from .conftest import Pki

DATA = b"header part\r\nbody-digest:none\r\n"


def _sign(pki: Pki, data: bytes = DATA) -> bytes:
    return cms_sign_detached(
        data, pki.sign.cert, pki.sign.key, [pki.ca.intermediate.cert], hash_alg="sha512"
    )


def _outcome(fn: object, *args: object, **kw: object) -> str:
    try:
        signer = fn(*args, **kw)  # type: ignore[operator]
    except Exception:  # e.g. cryptography's InvalidVersion for a mangled certificate
        return "rejected"
    if isinstance(signer, tuple):
        signer = signer[0]
    return f"signer {signer.serial_number}"


def test_second_signature_takes_the_fast_path(
    pki_ec: Pki, now: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    roots = [pki_ec.ca.root.cert]
    assert cms_verify_detached(_sign(pki_ec), DATA, trusted_roots=roots, now=now)
    other = b"another message"

    def no_full(*_a: object, **_k: object) -> None:
        raise AssertionError("full path taken")

    monkeypatch.setattr(_cms, "_verify_full", no_full)
    signer = cms_verify_detached(_sign(pki_ec, other), other, trusted_roots=roots, now=now)
    assert signer == pki_ec.sign.cert
    with pytest.raises(PkiError, match="messageDigest"):
        cms_verify_detached(_sign(pki_ec, other), other + b"!", trusted_roots=roots, now=now)


def test_every_byte_flip_decides_as_the_full_path(pki_ec: Pki, now: float) -> None:
    roots = [pki_ec.ca.root.cert]
    sig = _sign(pki_ec)
    cms_verify_detached(sig, DATA, trusted_roots=roots, now=now)  # warm the template
    for i in range(len(sig)):
        bad = sig[:i] + bytes([sig[i] ^ 0x01]) + sig[i + 1 :]
        fast = _outcome(cms_verify_detached, bad, DATA, trusted_roots=roots, now=now)
        _cms._templates.clear()
        full = _outcome(_cms._verify_full, bad, DATA, trusted_roots=roots, now=now)
        assert fast == full, f"byte {i}: fast {fast}, full {full}"
        cms_verify_detached(sig, DATA, trusted_roots=roots, now=now)


def test_other_roots_time_or_usage_are_not_served_from_the_cache(
    pki_ec: Pki, pki_foreign: Pki, now: float
) -> None:
    roots = [pki_ec.ca.root.cert]
    sig = _sign(pki_ec)
    cms_verify_detached(sig, DATA, trusted_roots=roots, now=now)
    with pytest.raises(PkiError):
        cms_verify_detached(sig, DATA, trusted_roots=[pki_foreign.ca.root.cert], now=now)
    with pytest.raises(PkiError):
        cms_verify_detached(sig, DATA, trusted_roots=roots, now=now + 100 * 365 * 86400)
    with pytest.raises(PkiError):
        cms_verify_detached(sig, DATA, trusted_roots=roots, now=now, usage="tsa")
    assert cms_verify_detached(sig, DATA, trusted_roots=roots, now=now) == pki_ec.sign.cert
