"""Scenarios: YAML model and loader, the interpreter that runs them against a federation
described by its manifest, checkers and the journal (``docs/scenarios.md``)."""

from federation.scenario._loader import load_scenario as load_scenario
from federation.scenario._loader import parse_duration as parse_duration
from federation.scenario._loader import parse_scenario as parse_scenario
from federation.scenario._model import Scenario as Scenario

__all__ = ["Scenario", "load_scenario", "parse_duration", "parse_scenario"]
