"""The X-Road security server: sans-IO protocol cores (this step) for the trio runtime.

* :mod:`.errors` - the one X-Road error table (:class:`Fault`), :class:`XRoadError`,
  :func:`render_error` (REST error JSON/XML + ``X-Road-Error``).
* REST r1 (``_rest``): :func:`parse_r1_target`, :func:`build_rest_request`,
  :func:`build_rest_response`, header parts, :func:`request_hash`,
  :func:`check_response_matches`.
* The signed envelope between security servers (``_envelope``, docs/exchange.md):
  :func:`sign_envelope`, :func:`encode_envelope`, :func:`decode_envelope`,
  :func:`verify_request`, :func:`verify_response`, :func:`signed_data`.
* The message log (``_messagelog``, docs/messagelog.md): :class:`MessageLog` with the hash
  chain and batch time-stamping, and :func:`run_timestamper` (trio).
* Metaservices and access rights (``_metaservices``): :func:`list_clients`,
  :func:`list_methods`, :func:`allowed_methods`, :class:`AccessRights`.
"""

from federation.securityserver._envelope import Envelope as Envelope
from federation.securityserver._envelope import VerifiedRequest as VerifiedRequest
from federation.securityserver._envelope import VerifiedResponse as VerifiedResponse
from federation.securityserver._envelope import decode_envelope as decode_envelope
from federation.securityserver._envelope import encode_envelope as encode_envelope
from federation.securityserver._envelope import sign_envelope as sign_envelope
from federation.securityserver._envelope import signed_data as signed_data
from federation.securityserver._envelope import transport_headers as transport_headers
from federation.securityserver._envelope import verify_request as verify_request
from federation.securityserver._envelope import verify_response as verify_response
from federation.securityserver._messagelog import GENESIS as GENESIS
from federation.securityserver._messagelog import ChainProof as ChainProof
from federation.securityserver._messagelog import LogRecord as LogRecord
from federation.securityserver._messagelog import MessageLog as MessageLog
from federation.securityserver._messagelog import MessageLogError as MessageLogError
from federation.securityserver._messagelog import TimestampBatch as TimestampBatch
from federation.securityserver._messagelog import TimestampRecord as TimestampRecord
from federation.securityserver._messagelog import chain_step as chain_step
from federation.securityserver._metaservices import METASERVICES as METASERVICES
from federation.securityserver._metaservices import AccessRights as AccessRights
from federation.securityserver._metaservices import Endpoint as Endpoint
from federation.securityserver._metaservices import MemberInfo as MemberInfo
from federation.securityserver._metaservices import ServiceDescription as ServiceDescription
from federation.securityserver._metaservices import allowed_methods as allowed_methods
from federation.securityserver._metaservices import check_access as check_access
from federation.securityserver._metaservices import list_clients as list_clients
from federation.securityserver._metaservices import list_clients_xml as list_clients_xml
from federation.securityserver._metaservices import list_methods as list_methods
from federation.securityserver._rest import RepresentedParty as RepresentedParty
from federation.securityserver._rest import RestRequest as RestRequest
from federation.securityserver._rest import RestResponse as RestResponse
from federation.securityserver._rest import RestTarget as RestTarget
from federation.securityserver._rest import build_rest_request as build_rest_request
from federation.securityserver._rest import build_rest_response as build_rest_response
from federation.securityserver._rest import check_response_matches as check_response_matches
from federation.securityserver._rest import parse_r1_target as parse_r1_target
from federation.securityserver._rest import (
    parse_request_header_part as parse_request_header_part,
)
from federation.securityserver._rest import (
    parse_response_header_part as parse_response_header_part,
)
from federation.securityserver._rest import request_hash as request_hash
from federation.securityserver._timestamper import TimestampOutcome as TimestampOutcome
from federation.securityserver._timestamper import run_timestamper as run_timestamper
from federation.securityserver._timestamper import timestamp_once as timestamp_once
from federation.securityserver.errors import ERROR_TABLE as ERROR_TABLE
from federation.securityserver.errors import Fault as Fault
from federation.securityserver.errors import XRoadError as XRoadError
from federation.securityserver.errors import render_error as render_error
