"""Shared fixtures. Tests bind port 0, never sleep for timers (autojump_clock), seed randomness."""

from __future__ import annotations
