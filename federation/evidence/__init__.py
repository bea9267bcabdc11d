"""Evidence: export a logged exchange as a zip container, verify it offline, audit a run.

* :func:`export_exchange` (``xfed evidence export``): one exchange of one security
  server's message log -> container bytes (layout in docs/evidence.md).
* :func:`verify_container` (``xfed evidence verify``): every check, one :class:`Verdict`
  each; trust only from ``--ca`` bundles and ``--anchor`` files.
* :func:`audit_run` (``xfed evidence audit``, the scenario runner's ``no_lost_messages``):
  every record of every message log of a run, read-only.
* CLI entry points :func:`cmd_export`, :func:`cmd_verify`, :func:`cmd_audit`.
"""

from federation.evidence._audit import audit_run as audit_run
from federation.evidence._cli import cmd_audit as cmd_audit
from federation.evidence._cli import cmd_export as cmd_export
from federation.evidence._cli import cmd_verify as cmd_verify
from federation.evidence._container import Evidence as Evidence
from federation.evidence._container import pack as pack
from federation.evidence._container import unpack as unpack
from federation.evidence._export import export_exchange as export_exchange
from federation.evidence._trust import InstanceTrust as InstanceTrust
from federation.evidence._trust import TrustStore as TrustStore
from federation.evidence._trust import load_ca_option as load_ca_option
from federation.evidence._verify import Report as Report
from federation.evidence._verify import Verdict as Verdict
from federation.evidence._verify import verify_container as verify_container

__all__ = [
    "Evidence",
    "InstanceTrust",
    "Report",
    "TrustStore",
    "Verdict",
    "audit_run",
    "cmd_audit",
    "cmd_export",
    "cmd_verify",
    "export_exchange",
    "load_ca_option",
    "pack",
    "unpack",
    "verify_container",
]
