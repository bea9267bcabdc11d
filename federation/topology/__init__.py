"""Instance definitions (``instances/*.yaml``): model, loader and cross-file checks.

See docs/instances.md for the schema.
"""

from federation.topology._loader import check_instances as check_instances
from federation.topology._loader import federation_links as federation_links
from federation.topology._loader import load_instance as load_instance
from federation.topology._loader import load_instances as load_instances
from federation.topology._loader import parse_instance as parse_instance
from federation.topology._model import BACKENDS as BACKENDS
from federation.topology._model import HTTP_METHODS as HTTP_METHODS
from federation.topology._model import AccessRule as AccessRule
from federation.topology._model import AllowedFederations as AllowedFederations
from federation.topology._model import Endpoint as Endpoint
from federation.topology._model import InstanceDef as InstanceDef
from federation.topology._model import MemberDef as MemberDef
from federation.topology._model import SecurityServerDef as SecurityServerDef
from federation.topology._model import ServiceDef as ServiceDef
from federation.topology._model import SubsystemDef as SubsystemDef
