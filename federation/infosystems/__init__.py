"""Sample information systems: provider backends served over trio + h11, and a consumer.

* :func:`serve_infosystem` / :func:`infosystem_handler` host :class:`ServiceSpec` services
  whose backends are named in ``instances/*.yaml`` (:data:`BACKENDS`).
* :func:`xroad_call` makes one X-Road REST call through a client proxy; :class:`XRoadCaller`
  lets a backend consume other services (the once-only scenario).
"""

from federation.infosystems._backends import BACKENDS as BACKENDS
from federation.infosystems._backends import Backend as Backend
from federation.infosystems._backends import BackendCall as BackendCall
from federation.infosystems._backends import BackendReply as BackendReply
from federation.infosystems._consumer import XRoadCaller as XRoadCaller
from federation.infosystems._consumer import XRoadResponse as XRoadResponse
from federation.infosystems._consumer import xroad_call as xroad_call
from federation.infosystems._server import ServiceSpec as ServiceSpec
from federation.infosystems._server import check_service_spec as check_service_spec
from federation.infosystems._server import infosystem_handler as infosystem_handler
from federation.infosystems._server import mount_path as mount_path
from federation.infosystems._server import serve_infosystem as serve_infosystem
from federation.infosystems._server import service_url as service_url
