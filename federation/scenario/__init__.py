"""Scenarios: YAML model and loader, the interpreter that runs them against a federation
described by its manifest, checkers and the journal (``docs/scenarios.md``).

Public surface:

* :func:`load_scenario` / :func:`parse_scenario`: YAML -> :class:`Scenario` (raises
  :class:`~federation.errors.ScenarioError` naming the file, line and YAML path);
* :func:`run_scenario`: run one against ``start_federation`` and write ``journal.json`` and
  ``report.html``; :func:`run_scenario_cli`: the ``xfed run`` shell (exit codes 0/1/2).
"""

from federation.scenario._checks import CheckResult as CheckResult
from federation.scenario._cli import run_scenario_cli as run_scenario_cli
from federation.scenario._interpreter import Auditor as Auditor
from federation.scenario._interpreter import RunResult as RunResult
from federation.scenario._interpreter import StartFederation as StartFederation
from federation.scenario._interpreter import run_scenario as run_scenario
from federation.scenario._loader import load_scenario as load_scenario
from federation.scenario._loader import parse_duration as parse_duration
from federation.scenario._loader import parse_scenario as parse_scenario
from federation.scenario._model import Scenario as Scenario

__all__ = [
    "Auditor",
    "CheckResult",
    "RunResult",
    "Scenario",
    "StartFederation",
    "load_scenario",
    "parse_duration",
    "parse_scenario",
    "run_scenario",
    "run_scenario_cli",
]
