"""The X-Road PKI of each instance: issuing, OCSP (RFC 6960), time-stamps (RFC 3161), CMS.

* :class:`CertificateAuthority` issues the X-Road certificate profiles (auth, sign, OCSP
  responder, TSA) from a root + intermediate per instance; :func:`identify` maps a
  certificate back to its member or security server.
* :func:`verify_chain` validates a chain for a usage (``auth``, ``sign``, ``tsa``, ``ocsp``).
* :class:`OcspResponder` (sans-IO) and :func:`serve_ocsp` (trio shell with an admin
  listener); :func:`build_ocsp_request` / :func:`check_ocsp_response` for clients.
* :class:`TimeStampAuthority` and :func:`serve_tsa`; :func:`build_ts_query`,
  :func:`parse_ts_reply`, :func:`verify_ts_token` for clients.
* :func:`cms_sign_detached` / :func:`cms_verify_detached`.

See docs/pki.md for the layout, the profiles and the openssl commands that check each.
"""

from federation.pki._cms import cms_sign_detached as cms_sign_detached
from federation.pki._cms import cms_verify_detached as cms_verify_detached
from federation.pki._issue import CertificateAuthority as CertificateAuthority
from federation.pki._issue import identify as identify
from federation.pki._keys import Credential as Credential
from federation.pki._keys import KeyType as KeyType
from federation.pki._keys import PrivateKey as PrivateKey
from federation.pki._keys import generate_key as generate_key
from federation.pki._keys import load_cert_pem as load_cert_pem
from federation.pki._keys import load_certs_pem as load_certs_pem
from federation.pki._keys import load_key_pem as load_key_pem
from federation.pki._ocsp import OcspResponder as OcspResponder
from federation.pki._ocsp import OcspStaleError as OcspStaleError
from federation.pki._ocsp import OcspStatus as OcspStatus
from federation.pki._ocsp import Revocation as Revocation
from federation.pki._ocsp import build_ocsp_request as build_ocsp_request
from federation.pki._ocsp import check_ocsp_response as check_ocsp_response
from federation.pki._server import OcspEndpoints as OcspEndpoints
from federation.pki._server import revoke_remote as revoke_remote
from federation.pki._server import serve_ocsp as serve_ocsp
from federation.pki._server import serve_tsa as serve_tsa
from federation.pki._server import unrevoke_remote as unrevoke_remote
from federation.pki._tsa import TimeStampAuthority as TimeStampAuthority
from federation.pki._tsa import build_ts_query as build_ts_query
from federation.pki._tsa import parse_ts_reply as parse_ts_reply
from federation.pki._tsa import verify_ts_token as verify_ts_token
from federation.pki._verify import Usage as Usage
from federation.pki._verify import check_usage as check_usage
from federation.pki._verify import verify_chain as verify_chain
