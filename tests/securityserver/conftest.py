"""A small session PKI for the security server cores: EE and FI CAs, signing certificates
for a client member (EE) and a provider member (FI), and a TSA in EE."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from federation.identifiers import ClientId
from federation.pki import CertificateAuthority, Credential, TimeStampAuthority

NOW = float(int(time.time()))
CLIENT = ClientId.parse("EE/GOV/70000001/consumer")
PROVIDER = ClientId.parse("FI/GOV/0245437-2/tax")


@dataclass(frozen=True)
class Pki:
    ee: CertificateAuthority
    fi: CertificateAuthority
    client_sign: Credential
    provider_sign: Credential
    other_ee_sign: Credential
    tsa: TimeStampAuthority


@pytest.fixture(scope="session")
def pki() -> Pki:
    ee = CertificateAuthority.create("EE", now=NOW - 3600)
    fi = CertificateAuthority.create("FI", now=NOW - 3600)
    return Pki(
        ee=ee,
        fi=fi,
        client_sign=ee.issue_sign(CLIENT.member, now=NOW - 60),
        provider_sign=fi.issue_sign(PROVIDER.member, now=NOW - 60),
        other_ee_sign=ee.issue_sign(ClientId.parse("EE/COM/12345678"), now=NOW - 60),
        tsa=TimeStampAuthority(ee.issue_tsa(now=NOW - 60)),
    )
