from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.evidence.fakerun import FakeRun


@pytest.fixture
def run(tmp_path: Path) -> Iterator[FakeRun]:
    r = FakeRun.create(tmp_path / "run")
    yield r
    r.close()
