"""xfed: a testbed for X-Road federation (the X-Road emulation, the runner, the CLI)."""

__version__ = "0.1.0"
