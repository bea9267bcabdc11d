"""RFC 3161 time-stamping: a sans-IO authority and the client-side helpers.

:meth:`TimeStampAuthority.respond` turns a DER ``TimeStampReq`` into a DER
``TimeStampResp`` and never raises (section 2.4.2): a granted response carries a CMS
``SignedData`` token over a ``TSTInfo`` (genTime = ``now`` with microseconds, accuracy 1 s,
the request's nonce, the signer certificate chain when certReq is set); the signed
attributes are contentType, messageDigest and ESS signingCertificateV2 (RFC 5035, required
by ``openssl ts -verify``). Rejections carry a PKIFailureInfo:

* ``badDataFormat``: the request does not parse, or the digest length does not fit the
  algorithm;
* ``badAlg``: a hash algorithm other than SHA-1/SHA-224/SHA-256/SHA-384/SHA-512;
* ``unacceptedPolicy``: a reqPolicy other than ours; ``unacceptedExtension``: extensions;
* ``badRequest``: anything else wrong with the request (version);
* ``systemFailure``: an internal error.

Building the ESSCertIDv2 attribute costs ~18 ms in asn1crypto, so its DER is built once per
TSA and reloaded per token (feasibility.md Q2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, final

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from federation.clock import to_datetime
from federation.errors import PkiError
from federation.pki._cms import (
    embedded_certificates,
    find_signer,
    parse_signed_data,
    verify_signer_info,
)
from federation.pki._keys import Credential, describe, hash_algorithm
from federation.pki._verify import verify_chain

DEFAULT_POLICY = "2.999.1.3161"
"""The TSA policy OID (under the ITU-T/ISO ``example`` arc 2.999: a test policy)."""

FAIL_INFO_NAMES = {
    "bad_alg": "badAlg",
    "bad_request": "badRequest",
    "bad_data_format": "badDataFormat",
    "time_not_available": "timeNotAvailable",
    "unaccepted_policy": "unacceptedPolicy",
    "unaccepted_extensions": "unacceptedExtension",
    "add_info_not_available": "addInfoNotAvailable",
    "system_failure": "systemFailure",
}
"""asn1crypto's PKIFailureInfo bit names -> the RFC 3161 2.4.2 names used in messages."""

DIGEST_SIZES = {"sha1": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64}


class TimeStampResp(tsp.TimeStampResp):
    """RFC 3161 2.4.2 ``TimeStampResp`` with ``timeStampToken`` OPTIONAL, as the RFC has
    it (asn1crypto 1.5.1 marks it mandatory, so a rejection cannot be encoded)."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _reject(fail_info: str, text: str) -> bytes:
    return TimeStampResp(
        {
            "status": {
                "status": "rejection",
                "status_string": [text],
                "fail_info": {fail_info},
            }
        }
    ).dump()


@final
class TimeStampAuthority:
    """A sans-IO RFC 3161 TSA signing with ``credential`` (a TSA-profile certificate).

    Serial numbers strictly increase and are at least ``int(now * 1000)``, so a restarted
    TSA does not reuse them.
    """

    def __init__(
        self,
        credential: Credential,
        *,
        policy: str = DEFAULT_POLICY,
        accuracy_s: int = 1,
    ) -> None:
        self.credential = credential
        self.policy = policy
        self.accuracy_s = accuracy_s
        self._last_serial = 0
        cert_der = credential.cert.public_bytes(serialization.Encoding.DER)
        asn_cert = asn1_x509.Certificate.load(cert_der)
        self._certs_der = [cert_der] + [
            c.public_bytes(serialization.Encoding.DER) for c in credential.chain
        ]
        self._sid = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": asn_cert.issuer,
                    "serial_number": asn_cert.serial_number,
                }
            }
        )
        self._ess_der = cms.CMSAttribute(
            {
                "type": "signing_certificate_v2",
                "values": [
                    {
                        "certs": [
                            {
                                "hash_algorithm": {"algorithm": "sha256"},
                                "cert_hash": hashlib.sha256(cert_der).digest(),
                                "issuer_serial": {
                                    "issuer": [
                                        asn1_x509.GeneralName(
                                            name="directory_name", value=asn_cert.issuer
                                        )
                                    ],
                                    "serial_number": asn_cert.serial_number,
                                },
                            }
                        ]
                    }
                ],
            }
        ).dump()
        key = credential.key
        sig_alg = "sha256_rsa" if isinstance(key, rsa.RSAPrivateKey) else "sha256_ecdsa"
        # constant parts, encoded once and re-loaded (lazily parsed) per token
        self._sig_alg_der = algos.SignedDigestAlgorithm({"algorithm": sig_alg}).dump()
        self._digest_alg_der = algos.DigestAlgorithm({"algorithm": "sha256"}).dump()
        self._sid_der = self._sid.dump()
        self._certs_set_der = cms.CertificateSet(
            [asn1_x509.Certificate.load(d) for d in self._certs_der]
        ).dump()

    def _sign(self, message: bytes) -> bytes:
        key = self.credential.key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(message, ec.ECDSA(hashes.SHA256()))

    def respond(self, query_der: bytes, now: float) -> bytes:
        """One DER TimeStampResp for one DER TimeStampReq (RFC 3161 2.4); never raises."""
        try:
            return self._respond(query_der, now)
        except Exception as exc:
            return _reject("system_failure", f"internal error: {type(exc).__name__}")

    def _respond(self, query_der: bytes, now: float) -> bytes:
        try:
            req = tsp.TimeStampReq.load(query_der, strict=True)
            native = req.native
            imprint = req["message_imprint"]
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
            # AttributeError: asn1crypto on a field of an unexpected universal type (certReq
            # tagged ObjectDescriptor has no .native)
            return _reject("bad_data_format", f"request does not parse: {exc}")
        if native["version"] != "v1":
            return _reject("bad_request", f"unsupported request version {native['version']}")
        alg = native["message_imprint"]["hash_algorithm"]["algorithm"]
        digest = native["message_imprint"]["hashed_message"]
        if alg not in DIGEST_SIZES:
            return _reject("bad_alg", f"unsupported hash algorithm {alg}")
        if len(digest) != DIGEST_SIZES[alg]:
            return _reject("bad_data_format", f"{alg} digest must be {DIGEST_SIZES[alg]} bytes")
        if native["req_policy"] is not None and native["req_policy"] != self.policy:
            return _reject("unaccepted_policy", f"policy {native['req_policy']} is not offered")
        if native["extensions"]:
            return _reject("unaccepted_extensions", "request extensions are not supported")
        return self._grant(imprint, native["nonce"], bool(native["cert_req"]), now)

    def _grant(
        self, imprint: tsp.MessageImprint, nonce: int | None, cert_req: bool, now: float
    ) -> bytes:
        serial = max(self._last_serial + 1, int(now * 1000))
        self._last_serial = serial
        info: dict[str, Any] = {
            "version": "v1",
            "policy": self.policy,
            "message_imprint": imprint,
            "serial_number": serial,
            "gen_time": to_datetime(now),
            "accuracy": {"seconds": self.accuracy_s},
        }
        if nonce is not None:
            info["nonce"] = nonce
        tst_der = tsp.TSTInfo(info).dump()
        signed_attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute(
                    {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]}
                ),
                cms.CMSAttribute.load(self._ess_der),
            ]
        )
        signature = self._sign(signed_attrs.dump())
        signed_data: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm.load(self._digest_alg_der)],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(tst_der),
            },
            "signer_infos": [
                {
                    "version": "v1",
                    "sid": cms.SignerIdentifier.load(self._sid_der),
                    "digest_algorithm": algos.DigestAlgorithm.load(self._digest_alg_der),
                    "signed_attrs": signed_attrs,
                    "signature_algorithm": algos.SignedDigestAlgorithm.load(self._sig_alg_der),
                    "signature": signature,
                }
            ],
        }
        if cert_req:
            signed_data["certificates"] = cms.CertificateSet.load(self._certs_set_der)
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
        return TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()


# --- client side -----------------------------------------------------------------------


def build_ts_query(
    *,
    data: bytes | None = None,
    digest: bytes | None = None,
    hash_alg: str = "sha512",
    nonce: int | None = None,
    cert_req: bool = True,
    policy: str | None = None,
) -> bytes:
    """A DER TimeStampReq (RFC 3161 2.4.1) over ``data`` or its precomputed ``digest``.

    X-Road time-stamps the hash-chain result of signature hashes with SHA-512 by default.
    """
    if (data is None) == (digest is None):
        raise PkiError("build_ts_query needs exactly one of data and digest")
    name = hash_algorithm(hash_alg).name
    if digest is None:
        digest = hashlib.new(name, data or b"").digest()
    req: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": name},
            "hashed_message": digest,
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        req["nonce"] = nonce
    if policy is not None:
        req["req_policy"] = policy
    return tsp.TimeStampReq(req).dump()


def parse_ts_reply(reply_der: bytes, *, nonce: int | None = None) -> bytes:
    """The DER token (ContentInfo) of a granted TimeStampResp.

    Raises PkiError with the PKIStatus, failInfo and statusString when the TSA refused,
    or when ``nonce`` is given and the token does not carry it.
    """
    try:
        resp = TimeStampResp.load(reply_der, strict=True)
        status = resp["status"]
        code = status["status"].native
        if code not in ("granted", "granted_with_mods"):
            fail = status["fail_info"].native
            text = status["status_string"].native
            raise PkiError(
                f"time-stamp request rejected: status {code}"
                + (
                    f", failInfo {', '.join(sorted(FAIL_INFO_NAMES.get(f, f) for f in fail))}"
                    if fail
                    else ""
                )
                + (f": {'; '.join(text)}" if text else "")
            )
        token = resp["time_stamp_token"]
        if isinstance(token, core.Void):
            raise PkiError("time-stamp response is granted but carries no token")
        token_der: bytes = token.dump()
        if nonce is not None:
            tst = _tst_info(parse_signed_data(token_der, "time-stamp token"))
            if tst["nonce"].native != nonce:
                raise PkiError("time-stamp token does not carry the request nonce")
        return token_der
    except (ValueError, TypeError, KeyError) as exc:
        raise PkiError(f"malformed time-stamp response: {exc}") from None


def _tst_content(signed: cms.SignedData) -> bytes:
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise PkiError(f"token content is {encap['content_type'].native}, not TSTInfo")
    content = encap["content"]
    if isinstance(content, core.Void):
        raise PkiError("time-stamp token has no TSTInfo")
    raw: bytes = content.contents
    return raw


def _tst_info(signed: cms.SignedData) -> tsp.TSTInfo:
    return tsp.TSTInfo.load(_tst_content(signed))


def _check_ess(attrs: dict[str, Any], signer: x509.Certificate) -> None:
    """RFC 5035 / RFC 2634 5.4: the first ESSCertID(v2) hashes the signer certificate."""
    der = signer.public_bytes(serialization.Encoding.DER)
    if "signing_certificate_v2" in attrs:
        cert_id = attrs["signing_certificate_v2"]["certs"][0]
        alg = cert_id["hash_algorithm"]["algorithm"].native
    elif "signing_certificate" in attrs:
        cert_id = attrs["signing_certificate"]["certs"][0]
        alg = "sha1"
    else:
        raise PkiError("time-stamp token has no ESS signing-certificate attribute")
    if cert_id["cert_hash"].native != hashlib.new(hash_algorithm(alg).name, der).digest():
        raise PkiError(f"ESS signing-certificate attribute does not name {describe(signer)}")
    issuer_serial = cert_id["issuer_serial"]
    if not isinstance(issuer_serial, core.Void):
        if issuer_serial["serial_number"].native != signer.serial_number:
            raise PkiError("ESS signing-certificate serial does not match the signer")


def verify_ts_token(
    token_der: bytes,
    *,
    digest: bytes,
    hash_alg: str,
    trusted_roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    now: float | None = None,
) -> float:
    """Verify a time-stamp token over ``digest``; return genTime (POSIX seconds).

    Checks (RFC 3161 2.4.2, RFC 5652 5.6): the imprint algorithm and digest, the signature
    over the signed attributes and their messageDigest of the TSTInfo, the ESS
    signing-certificate attribute against the signer, and the signer chain (through the
    embedded certificates or ``intermediates``, which must hold the TSA certificate when the
    token has none) to ``trusted_roots`` with EKU timeStamping, at ``now`` (default genTime).
    """
    signed = parse_signed_data(token_der, "time-stamp token")
    try:
        tst_der = _tst_content(signed)
        tst = tsp.TSTInfo.load(tst_der)
        imprint = tst["message_imprint"]
        got_alg = imprint["hash_algorithm"]["algorithm"].native
        want_alg = hash_algorithm(hash_alg).name
        if got_alg != want_alg:
            raise PkiError(f"time-stamp imprint uses {got_alg}, expected {want_alg}")
        if imprint["hashed_message"].native != digest:
            raise PkiError("time-stamp imprint does not match the data (message imprint mismatch)")
        gen_time = float(tst["gen_time"].native.timestamp())
        infos = signed["signer_infos"]
        if len(infos) != 1:
            raise PkiError(f"time-stamp token has {len(infos)} signers, expected 1")
        certs = embedded_certificates(signed)
        candidates = [*certs, *intermediates]
        signer = find_signer(infos[0], candidates)
        attrs = verify_signer_info(infos[0], signer, tst_der, "tst_info")
        _check_ess(attrs, signer)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PkiError(f"malformed time-stamp token: {exc}") from None
    others = tuple(c for c in candidates if c != signer)
    verify_chain(signer, others, trusted_roots, gen_time if now is None else now, "tsa")
    return gen_time
