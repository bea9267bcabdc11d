"""Central servers: registry, signed configuration generation and distribution, federation.

* :class:`ConfGenerator` (sans-IO) builds and signs internal/external directories from an
  :class:`~federation.topology.InstanceDef` plus :class:`CentralFacts`.
* :class:`CentralServer` (trio) serves ``/internalconf`` and ``/externalconf``, regenerates
  on the generation interval, exports anchors and accepts partners' anchors.

See docs/globalconf.md.
"""

from federation.central._core import EXTERNAL_PATH as EXTERNAL_PATH
from federation.central._core import INTERNAL_PATH as INTERNAL_PATH
from federation.central._core import CentralFacts as CentralFacts
from federation.central._core import ConfGenerator as ConfGenerator
from federation.central._core import Generation as Generation
from federation.central._core import SecurityServerFacts as SecurityServerFacts
from federation.central._server import CentralServer as CentralServer
from federation.central._server import CentralServerAddresses as CentralServerAddresses
