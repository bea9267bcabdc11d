"""The run report: ``journal.json`` (written by the scenario interpreter) rendered into a
self-contained ``report.html`` (inline CSS + SVG; opens offline)."""

from federation.report._html import render_html as render_html
from federation.report._html import write_report as write_report

__all__ = ["render_html", "write_report"]
