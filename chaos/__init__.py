"""chaos: a Toxiproxy-compatible fault-injection TCP proxy and the fault catalogue.

Public surface:

* :class:`ChaosServer`, :func:`serve_chaos`, :func:`open_chaos_server`, :func:`main_serve`:
  the server (Toxiproxy 2.x HTTP API plus its TCP proxies) in-process or standalone;
* :class:`FaultClient`, :class:`FaultHandle`, :func:`link_name`: the fault catalogue
  (:mod:`chaos.faults`), which speaks the HTTP API to our server or a real Toxiproxy;
* :class:`LinkCore` and its actions: the sans-IO toxic pipeline;
* :class:`ChaosError` and its subclasses.

``chaos`` never imports ``federation``.
"""

from __future__ import annotations

from ._core import Action as Action
from ._core import Close as Close
from ._core import LinkCore as LinkCore
from ._core import Send as Send
from ._core import SendEof as SendEof
from ._errors import ApiError as ApiError
from ._errors import ChaosError as ChaosError
from ._errors import FaultError as FaultError
from ._errors import ProxyStartError as ProxyStartError
from ._model import ToxicSpec as ToxicSpec
from ._proxy import ProxyStats as ProxyStats
from ._server import ApiAddress as ApiAddress
from ._server import ChaosServer as ChaosServer
from ._server import main_serve as main_serve
from ._server import open_chaos_server as open_chaos_server
from ._server import serve_chaos as serve_chaos
from .faults import FaultClient as FaultClient
from .faults import FaultHandle as FaultHandle
from .faults import link_name as link_name
from .faults import link_targets as link_targets

__all__ = [
    "Action",
    "ApiAddress",
    "ApiError",
    "ChaosError",
    "ChaosServer",
    "Close",
    "FaultClient",
    "FaultError",
    "FaultHandle",
    "LinkCore",
    "ProxyStartError",
    "ProxyStats",
    "Send",
    "SendEof",
    "ToxicSpec",
    "link_name",
    "link_targets",
    "main_serve",
    "open_chaos_server",
    "serve_chaos",
]
