from __future__ import annotations

from pathlib import Path

from federation.securityserver import ERROR_TABLE

DOCS = Path(__file__).parents[2] / "docs"


def test_errors_doc_lists_every_row() -> None:
    text = (DOCS / "errors.md").read_text()
    for fault in ERROR_TABLE:
        row = f"| `{fault.name}` | `{fault.legacy}` | `{fault.modern}` | {fault.status} |"
        assert row in text, fault
