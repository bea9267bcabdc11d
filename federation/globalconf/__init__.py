"""Global configuration: parameters, signed directories, anchors, the configuration client.

* Model (JSON instead of X-Road's XML): :class:`SharedParameters`, :class:`PrivateParameters`,
  :class:`ConfigurationAnchor` and their parts.
* Signed directory (sans-IO): :func:`build_signed_directory`, :func:`parse_signed_directory`,
  :func:`verify_signed_directory`; signing keys :class:`ConfSigningKey`.
* Configuration client: :class:`ConfClientCore` (sans-IO) and :class:`ConfigurationClient`
  (trio loop, persistence, queries for the security server).
* :func:`collect_status` / :func:`render_status` for ``xfed status``.

See docs/globalconf.md.
"""

from federation.globalconf._client import ConfigurationClient as ConfigurationClient
from federation.globalconf._client import Fetcher as Fetcher
from federation.globalconf._client import FetchResult as FetchResult
from federation.globalconf._client import HttpFetcher as HttpFetcher
from federation.globalconf._client import UrlMap as UrlMap
from federation.globalconf._client import map_url as map_url
from federation.globalconf._client_core import ConfClientCore as ConfClientCore
from federation.globalconf._client_core import Fetch as Fetch
from federation.globalconf._client_core import HeldConf as HeldConf
from federation.globalconf._directory import PRIVATE_PARAMETERS as PRIVATE_PARAMETERS
from federation.globalconf._directory import SHARED_PARAMETERS as SHARED_PARAMETERS
from federation.globalconf._directory import ConfFile as ConfFile
from federation.globalconf._directory import DirectoryEntry as DirectoryEntry
from federation.globalconf._directory import SignedDirectory as SignedDirectory
from federation.globalconf._directory import build_signed_directory as build_signed_directory
from federation.globalconf._directory import parse_signed_directory as parse_signed_directory
from federation.globalconf._directory import verify_signed_directory as verify_signed_directory
from federation.globalconf._model import FORMAT_VERSION as FORMAT_VERSION
from federation.globalconf._model import AnchorSource as AnchorSource
from federation.globalconf._model import ApprovedCA as ApprovedCA
from federation.globalconf._model import ApprovedTSA as ApprovedTSA
from federation.globalconf._model import ConfigurationAnchor as ConfigurationAnchor
from federation.globalconf._model import ConfSource as ConfSource
from federation.globalconf._model import GlobalSettings as GlobalSettings
from federation.globalconf._model import MemberInfo as MemberInfo
from federation.globalconf._model import OcspResponder as OcspResponder
from federation.globalconf._model import PrivateParameters as PrivateParameters
from federation.globalconf._model import SecurityServerInfo as SecurityServerInfo
from federation.globalconf._model import SharedParameters as SharedParameters
from federation.globalconf._model import SubsystemInfo as SubsystemInfo
from federation.globalconf._model import cert_hash as cert_hash
from federation.globalconf._model import cert_to_pem as cert_to_pem
from federation.globalconf._signing import ConfSigningKey as ConfSigningKey
from federation.globalconf._status import central_dir as central_dir
from federation.globalconf._status import collect_status as collect_status
from federation.globalconf._status import conf_client_dir as conf_client_dir
from federation.globalconf._status import render_status as render_status
