"""Load generation and latency histograms, shared by the scenario runner and ``xfed bench``."""

from federation.bench._hist import Histogram as Histogram
from federation.bench._load import LoadStats as LoadStats
from federation.bench._load import RequestRecord as RequestRecord
from federation.bench._load import Target as Target
from federation.bench._load import default_client_factory as default_client_factory
from federation.bench._load import direction_of as direction_of
from federation.bench._load import payload as payload
from federation.bench._load import run_closed_loop as run_closed_loop
from federation.bench._load import run_open_loop as run_open_loop
from federation.bench._load import send_one as send_one
from federation.bench._load import xroad_target as xroad_target

__all__ = [
    "Histogram",
    "LoadStats",
    "RequestRecord",
    "Target",
    "default_client_factory",
    "direction_of",
    "payload",
    "run_closed_loop",
    "run_open_loop",
    "send_one",
    "xroad_target",
]
