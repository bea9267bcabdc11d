"""The self-contained HTML report of a scenario run, built from its journal alone.

Inline CSS and inline SVG only (no script, no external resource), so ``report.html``
opens offline and can be attached to a ticket. Sections: verdict (every expectation and
check), latency over time with fault windows shaded and errors marked (Jepsen's perf
plot), throughput, faults, latency percentiles per direction and per client -> service
pair with CDFs, error types, the data flow per link kind from the chaos byte counters, the
X-Road timers in force, and the steps.
"""

# ruff: noqa: E501  (SVG/HTML templates read better unwrapped)
from __future__ import annotations

from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

from federation.bench import Histogram
from federation.report._svg import (
    _fmt_bytes,
    bar_chart,
    cdf_plot,
    latency_timeline,
    throughput_timeline,
)

KIND_LABELS = {
    "ss-ss": "SS <-> SS (message exchange)",
    "ss-cs": "SS -> central server (configuration)",
    "ss-ocsp": "SS -> OCSP responder",
    "ss-tsa": "SS -> time-stamping authority",
    "cs-cs": "central server <-> central server",
}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:4px}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0 12px}
th,td{border:1px solid #e1e5ea;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#eef1f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;white-space:nowrap;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px;color:#fff}
.pass{background:#2e7d32}.fail{background:#c62828}.none{background:#78909c}
.status{font-size:16px;padding:3px 12px}
.meta td:first-child{width:180px;color:#5a6472}
svg.plot{background:#fff;border:1px solid #e1e5ea;max-width:100%;height:auto;display:block;margin:6px 0}
.plotbg{fill:#fcfcfd}.grid{stroke:#e6e9ed;stroke-width:1}
.tick{font-size:10px;fill:#5a6472}.axis{font-size:11px;fill:#333}.legend{font-size:11px;fill:#333}
.faultlabel{font-size:10px;font-weight:600}.stepmark{stroke:#9aa5b1;stroke-dasharray:3 3}
.note{color:#5a6472}code{background:#eef1f4;padding:0 3px;border-radius:3px}
"""


def _badge(passed: bool | None) -> str:
    if passed is None:
        return '<span class="badge none">n/a</span>'
    return (
        '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'
    )


def _table(headers: list[str], rows: list[list[str]], num_cols: set[int] | None = None) -> str:
    num_cols = num_cols or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in num_cols else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figs(figures: dict[str, Any]) -> str:
    parts = []
    for k, v in figures.items():
        if isinstance(v, dict | list):
            continue
        text = str(v)
        if len(text) > 120:
            text = text[:117] + "..."
        parts.append(f"{escape(k)}={escape(text)}")
    return '<span class="note">' + ", ".join(parts) + "</span>" if parts else ""


def _hist_rows(groups: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    rows = []
    for name, reqs in groups.items():
        h = Histogram()
        errors = 0
        for r in reqs:
            if r.get("error") is None:
                h.record_us(round(r["latency_ms"] * 1000))
            else:
                errors += 1
        p = h.percentiles_ms((50, 90, 99, 99.9))
        rows.append(
            [
                escape(name),
                str(len(reqs)),
                str(errors),
                *(
                    f"{p[k]:.2f}" if h.count else "-"
                    for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
                ),
            ]
        )
    return rows


def render_html(journal: dict[str, Any]) -> str:
    sc = journal.get("scenario") or {}
    scale = float(journal.get("time_scale") or 1)
    status = str(journal.get("status", "unknown"))
    reqs: list[dict[str, Any]] = journal.get("requests") or []
    load_reqs = [r for r in reqs if r.get("source") != "step"]
    ok_status = status == "passed"
    parts: list[str] = []
    add = parts.append

    # -- header ---------------------------------------------------------------------
    badge_cls = "pass" if ok_status else ("none" if status in ("running",) else "fail")
    add(
        f"<h1>{escape(str(sc.get('name', 'scenario')))} "
        f'<span class="badge status {badge_cls}">{escape(status.upper())}</span></h1>'
    )
    if sc.get("description"):
        add(f"<p>{escape(str(sc['description']))}</p>")
    duration = float(journal.get("duration_s") or 0)
    meta = [
        ["scenario file", f"<code>{escape(str(sc.get('file', '')))}</code>"],
        ["instances", escape(", ".join(Path(p).name for p in sc.get("instances", [])))],
        ["seed", escape(str(journal.get("seed")))],
        ["time scale", f"x{scale:g} (X-Road time runs {scale:g} times faster)"],
        ["duration", f"{duration:.1f} s wall clock = {duration * scale:.0f} s scenario time"],
        ["started", escape(str(journal.get("started_at", "")))],
        ["requests", f"{len(reqs)} ({sum(1 for r in reqs if r.get('error') is not None)} errors)"],
    ]
    if journal.get("error"):
        meta.append(["error", f"<pre>{escape(str(journal['error']))}</pre>"])
    add(
        '<table class="meta"><tbody>'
        + "".join(f"<tr><td>{a}</td><td>{b}</td></tr>" for a, b in meta)
        + "</tbody></table>"
    )

    # -- verdict --------------------------------------------------------------------
    add("<h2>Expectations</h2>")
    exps = journal.get("expectations") or []
    if exps:
        add(
            _table(
                ["step", "kind", "result", "at (scenario s)", "what happened"],
                [
                    [
                        escape(e["path"]),
                        escape(e["kind"]),
                        _badge(e["passed"]),
                        f"{e['start_scenario_s']:.0f}-{(e['end_scenario_s'] or 0):.0f}",
                        escape(e["message"]) + "<br>" + _figs(e.get("figures") or {}),
                    ]
                    for e in exps
                ],
            )
        )
    else:
        add('<p class="note">No expectations in this scenario.</p>')
    add("<h2>Checks</h2>")
    checks = journal.get("checks") or []
    if checks:
        add(
            _table(
                ["check", "result", "what happened"],
                [
                    [
                        escape(c["name"]),
                        _badge(c["passed"]),
                        escape(c["message"]) + "<br>" + _figs(c.get("figures") or {}),
                    ]
                    for c in checks
                ],
            )
        )
    else:
        add('<p class="note">No final checks in this scenario.</p>')

    # -- timelines ------------------------------------------------------------------
    directions = sorted({r["direction"] for r in reqs})
    add("<h2>Latency over time</h2>")
    add(
        '<p class="note">Every request at its intended send time (latency corrected for coordinated '
        "omission); fault windows shaded, errors as red crosses, step starts dashed.</p>"
    )
    add(latency_timeline(journal, directions))
    add(throughput_timeline(journal))

    # -- faults ---------------------------------------------------------------------
    add("<h2>Faults</h2>")
    faults = journal.get("faults") or []
    if faults:
        add(
            _table(
                ["name", "kind", "spec", "window (scenario s)", "healed by", "targets"],
                [
                    [
                        escape(w["name"]),
                        escape(w["kind"]),
                        f"<code>{escape(str(w['spec']))}</code>",
                        f"{w['start_scenario_s']:.0f} - {'' if w['end_scenario_s'] is None else format(w['end_scenario_s'], '.0f')}",
                        escape(str(w.get("healed_by") or "")),
                        escape(", ".join(w.get("targets") or [])),
                    ]
                    for w in faults
                ],
            )
        )
    else:
        add('<p class="note">No faults injected.</p>')

    # -- latency percentiles --------------------------------------------------------
    add("<h2>Latency percentiles</h2>")
    by_dir: dict[str, list[dict[str, Any]]] = {}
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for r in load_reqs:
        by_dir.setdefault(_dir_label(r["direction"]), []).append(r)
        by_pair.setdefault(f"{r['client']} -> {r['service']}", []).append(r)
    heads = ["", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"]
    add("<h3>Per direction</h3>")
    add(
        _table(
            ["direction", *heads[1:]], _hist_rows(dict(sorted(by_dir.items()))), set(range(1, 8))
        )
    )
    series = {}
    for name, rs in sorted(by_dir.items()):
        h = Histogram()
        for r in rs:
            if r.get("error") is None:
                h.record_us(round(r["latency_ms"] * 1000))
        series[name] = h.cdf_points()
    if any(series.values()):
        add(cdf_plot(series, "Latency CDF per direction"))
    add("<h3>Per client -> service</h3>")
    add(
        _table(
            ["client -> service", *heads[1:]],
            _hist_rows(dict(sorted(by_pair.items()))),
            set(range(1, 8)),
        )
    )

    # -- errors ---------------------------------------------------------------------
    add("<h2>Error types</h2>")
    counts = Counter(str(r["error"]) for r in reqs if r.get("error") is not None)
    if counts:
        by_type_dir: dict[str, Counter[str]] = {}
        for r in reqs:
            if r.get("error") is not None:
                by_type_dir.setdefault(str(r["error"]), Counter())[r["direction"]] += 1
        add(
            _table(
                ["X-Road error type", "count", "directions"],
                [
                    [
                        f"<code>{escape(k)}</code>",
                        str(v),
                        escape(", ".join(f"{d}: {n}" for d, n in sorted(by_type_dir[k].items()))),
                    ]
                    for k, v in counts.most_common()
                ],
                {1},
            )
        )
    else:
        add('<p class="note">No errors.</p>')

    # -- data flow ------------------------------------------------------------------
    add("<h2>Data flow</h2>")
    flow = journal.get("data_flow") or {}
    kinds: dict[str, Any] = flow.get("kinds") or {}
    if kinds:
        add(
            '<p class="note">Bytes through the chaos proxies during the run, per link kind. '
            "X-Road has no central broker: message data should travel only directly between "
            "security servers; central servers serve configuration only.</p>"
        )
        order = [k for k in KIND_LABELS if k in kinds] + sorted(
            k for k in kinds if k not in KIND_LABELS
        )
        add(
            bar_chart(
                [(KIND_LABELS.get(k, k), float(kinds[k]["bytes"])) for k in order],
                title="Bytes per link kind",
            )
        )
        add(
            _table(
                ["link kind", "links", "bytes up", "bytes down", "total"],
                [
                    [
                        escape(KIND_LABELS.get(k, k)),
                        str(kinds[k]["links"]),
                        _fmt_bytes(kinds[k]["bytes_upstream"]),
                        _fmt_bytes(kinds[k]["bytes_downstream"]),
                        _fmt_bytes(kinds[k]["bytes"]),
                    ]
                    for k in order
                ],
                {1, 2, 3, 4},
            )
        )
        links = flow.get("links") or {}
        add("<details><summary>Per link</summary>")
        add(
            _table(
                ["link", "kind", "bytes up", "bytes down"],
                [
                    [
                        f"<code>{escape(n)}</code>",
                        escape(v["kind"]),
                        _fmt_bytes(v["bytes_upstream"]),
                        _fmt_bytes(v["bytes_downstream"]),
                    ]
                    for n, v in sorted(links.items())
                ],
                {2, 3},
            )
        )
        add("</details>")
        broker = next(
            (c for c in journal.get("checks") or [] if c.get("name") == "no_central_broker"), None
        )
        judged = ((broker or {}).get("figures") or {}).get("links") or {}
        if judged:
            add(
                '<p class="note">no_central_broker, per central link: what it carried during '
                "the load against at most its configuration downloads (partitions excluded); "
                "hidden = exchanges that could still have hidden in the allowance.</p>"
            )
            add(
                _table(
                    ["central link", "bytes", "download", "downloads max", "allowed", "excess",
                     "hidden"],
                    [
                        [
                            f"<code>{escape(n)}</code>",
                            _fmt_bytes(v.get("bytes", 0)),
                            _fmt_bytes(v["download_bytes"]) if "download_bytes" in v else "-",
                            str(v.get("downloads_max", "-")),
                            _fmt_bytes(v["expected_max_bytes"])
                            if "expected_max_bytes" in v
                            else "-",
                            _fmt_bytes(v["excess_bytes"]) if "excess_bytes" in v else "not judged",
                            str(v.get("hidden_exchanges", "-")),
                        ]
                        for n, v in sorted(judged.items())
                    ],
                    {1, 2, 3, 4, 5, 6},
                )
            )  # fmt: skip
    else:
        add('<p class="note">No chaos byte counters were recorded.</p>')

    # -- timers ---------------------------------------------------------------------
    add("<h2>X-Road timers in force</h2>")
    timers: dict[str, dict[str, Any]] = journal.get("timers") or {}
    if timers:
        insts = sorted(timers)
        names = sorted({n for t in timers.values() for n in t})
        rows = []
        for n in names:
            row = [f"<code>{escape(n)}</code>"]
            for i in insts:
                v = timers[i].get(n)
                row.append("-" if v is None else f"{v['xroad_s']:g} s ({v['real_s']:.3g} s real)")
            rows.append(row)
        add(_table(["timer", *insts], rows))
        if journal.get("settings"):
            add(
                f'<p class="note">Scenario overrides: <code>{escape(str(journal["settings"]))}</code></p>'
            )
    else:
        add('<p class="note">The manifest listed no timers.</p>')

    # -- steps ----------------------------------------------------------------------
    add("<h2>Steps</h2>")
    add(
        _table(
            ["#", "kind", "start (scenario s)", "end", "result", "message"],
            [
                [
                    str(s["index"] + 1),
                    escape(s["kind"]),
                    f"{s['start_scenario_s']:.1f}",
                    "" if s["end_scenario_s"] is None else f"{s['end_scenario_s']:.1f}",
                    _badge(s["passed"]) if s["passed"] is not None else "",
                    escape(s.get("message") or "")
                    + (
                        f"<br><span class='note'>{escape(s['note'])}</span>"
                        if s.get("note")
                        else ""
                    ),
                ]
                for s in journal.get("steps") or []
            ],
        )
    )

    title = escape(f"xfed: {sc.get('name', 'scenario')} ({status})")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f"<style>{CSS}</style></head><body><main>\n"
        + "\n".join(parts)
        + "\n</main></body></html>\n"
    )


def _dir_label(direction: str) -> str:
    return direction if "->" in direction else f"{direction} (intra)"


def write_report(journal: dict[str, Any], path: Path) -> Path:
    """Render ``journal`` into ``path`` (UTF-8 HTML); returns ``path``."""
    path = Path(path)
    path.write_text(render_html(journal), encoding="utf-8")
    return path
