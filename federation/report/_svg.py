"""Inline SVG plots for the HTML report (no plotting library; the page must open offline).

Each function returns an ``<svg>`` element as a string. Inline SVG inside HTML5 needs no
namespace declaration, so the report holds no URL at all.
"""

# ruff: noqa: E501  (SVG/HTML templates read better unwrapped)
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f")
ERROR_COLOR = "#d62728"
FAULT_COLORS = {
    "partition": "#d62728",
    "latency": "#ff7f0e",
    "revoke": "#9467bd",
    "toxic": "#8c564b",
}
MAX_OK_POINTS = 4000
MAX_ERROR_POINTS = 3000


@dataclass(frozen=True, slots=True)
class Frame:
    """Plot area geometry."""

    width: int = 960
    height: int = 320
    left: int = 64
    right: int = 16
    top: int = 24
    bottom: int = 40

    @property
    def pw(self) -> float:
        return self.width - self.left - self.right

    @property
    def ph(self) -> float:
        return self.height - self.top - self.bottom


def _num(x: float) -> str:
    return f"{x:.1f}"


def _fmt_ms(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g} s"
    return f"{v:g} ms"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class LogScale:
    def __init__(self, lo: float, hi: float, p0: float, p1: float) -> None:
        self.lo = math.log10(max(lo, 1e-3))
        self.hi = math.log10(max(hi, lo * 10, 1e-2))
        self.p0, self.p1 = p0, p1

    def __call__(self, v: float) -> float:
        x = math.log10(max(v, 10**self.lo))
        return self.p0 + (x - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self) -> list[float]:
        mults = (1, 2, 5) if self.hi - self.lo < 3 else (1,)
        out: list[float] = []
        for e in range(math.floor(self.lo), math.ceil(self.hi) + 1):
            for m in mults:
                v = m * 10.0**e
                if self.lo <= math.log10(v) <= self.hi:
                    out.append(float(v))
        return out


class LinScale:
    def __init__(self, lo: float, hi: float, p0: float, p1: float) -> None:
        self.lo, self.hi = lo, hi if hi > lo else lo + 1
        self.p0, self.p1 = p0, p1

    def __call__(self, v: float) -> float:
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self, n: int = 6) -> list[float]:
        span = self.hi - self.lo
        raw = span / max(n, 1)
        mag = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
        step = next((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), 10 * mag)
        first = math.ceil(self.lo / step) * step
        out: list[float] = []
        v = float(first)
        while v <= self.hi + 1e-9:
            out.append(round(v, 10))
            v += step
        return out


def _open(f: Frame, title: str, cls: str) -> list[str]:
    return [
        f'<svg class="{cls}" viewBox="0 0 {f.width} {f.height}" width="{f.width}" '
        f'height="{f.height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{f.left}" y="{f.top}" width="{_num(f.pw)}" height="{_num(f.ph)}" class="plotbg"/>',
    ]


def _x_axis(f: Frame, xs: LinScale, label: str) -> list[str]:
    out = []
    y = f.top + f.ph
    for t in xs.ticks(8):
        x = xs(t)
        out.append(
            f'<line x1="{_num(x)}" y1="{f.top}" x2="{_num(x)}" y2="{_num(y)}" class="grid"/>'
        )
        out.append(
            f'<text x="{_num(x)}" y="{_num(y + 14)}" class="tick" text-anchor="middle">{t:g}</text>'
        )
    out.append(
        f'<text x="{_num(f.left + f.pw / 2)}" y="{f.height - 6}" class="axis" '
        f'text-anchor="middle">{escape(label)}</text>'
    )
    return out


def _y_log_axis(f: Frame, ys: LogScale, label: str) -> list[str]:
    out = []
    for v in ys.ticks():
        y = ys(v)
        out.append(
            f'<line x1="{f.left}" y1="{_num(y)}" x2="{_num(f.left + f.pw)}" y2="{_num(y)}" class="grid"/>'
        )
        out.append(
            f'<text x="{f.left - 6}" y="{_num(y + 4)}" class="tick" text-anchor="end">{_fmt_ms(v)}</text>'
        )
    out.append(
        f'<text x="14" y="{_num(f.top + f.ph / 2)}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 14 {_num(f.top + f.ph / 2)})">{escape(label)}</text>'
    )
    return out


def _fault_bands(
    f: Frame, xs: LinScale, faults: Sequence[dict[str, Any]], end_s: float
) -> list[str]:
    out = []
    for i, w in enumerate(faults):
        x0 = xs(max(xs.lo, w["start_scenario_s"]))
        end = w.get("end_scenario_s")
        x1 = xs(min(xs.hi, end if end is not None else end_s))
        color = FAULT_COLORS.get(w.get("kind", ""), "#7f7f7f")
        tip = f"{w['name']} ({w.get('kind')}): {w['start_scenario_s']:g}-{end if end is not None else 'end'} s"
        out.append(
            f'<rect class="fault" data-fault="{escape(w["name"])}" x="{_num(x0)}" y="{f.top}" '
            f'width="{_num(max(x1 - x0, 1.0))}" height="{_num(f.ph)}" fill="{color}" '
            f'fill-opacity="0.15"><title>{escape(tip)}</title></rect>'
        )
        out.append(
            f'<text x="{_num(x0 + 3)}" y="{f.top + 12 + 12 * (i % 3)}" class="faultlabel" '
            f'fill="{color}">{escape(w["name"])}</text>'
        )
    return out


def _step_marks(f: Frame, xs: LinScale, steps: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for s in steps:
        x = xs(s["start_scenario_s"])
        label = f"#{s['index'] + 1} {s['kind']}"
        out.append(
            f'<line x1="{_num(x)}" y1="{f.top}" x2="{_num(x)}" y2="{_num(f.top + f.ph)}" class="stepmark">'
            f"<title>{escape(label)}</title></line>"
        )
    return out


def latency_timeline(journal: dict[str, Any], directions: Sequence[str]) -> str:
    """Latency of every request against scenario time (log y), fault windows shaded,
    errors marked with red crosses, step starts as dashed lines."""
    scale = float(journal.get("time_scale") or 1)
    reqs = journal.get("requests") or []
    end_s = max(float(journal.get("duration_s") or 0) * scale, 1.0)
    f = Frame()
    xs = LinScale(0, end_s, f.left, f.left + f.pw)
    lats = [max(r["latency_ms"], 0.01) for r in reqs] or [1.0]
    ys = LogScale(min(lats) / 1.5, max(lats) * 1.5, f.top + f.ph, f.top)
    out = _open(f, "Latency over time", "plot latency-timeline")
    out += _fault_bands(f, xs, journal.get("faults") or [], end_s)
    out += _y_log_axis(f, ys, "latency")
    out += _x_axis(f, xs, "scenario time (s)")
    out += _step_marks(f, xs, journal.get("steps") or [])
    ok = [r for r in reqs if r.get("error") is None]
    bad = [r for r in reqs if r.get("error") is not None]
    stride = max(1, math.ceil(len(ok) / MAX_OK_POINTS))
    color = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(directions)}
    out.append('<g class="ok">')
    for r in ok[::stride]:
        x, y = xs(r["t"] * scale), ys(max(r["latency_ms"], 0.01))
        out.append(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="1.6" fill="{color.get(r["direction"], "#555")}"/>'
        )
    out.append("</g>")
    bstride = max(1, math.ceil(len(bad) / MAX_ERROR_POINTS))
    out.append(f'<g class="errors" stroke="{ERROR_COLOR}" stroke-width="1.2">')
    for r in bad[::bstride]:
        x, y = xs(r["t"] * scale), ys(max(r["latency_ms"], 0.01))
        out.append(
            f'<path class="err" d="M{_num(x - 3)} {_num(y - 3)}L{_num(x + 3)} {_num(y + 3)}'
            f'M{_num(x - 3)} {_num(y + 3)}L{_num(x + 3)} {_num(y - 3)}">'
            f"<title>{escape(str(r['error']))}</title></path>"
        )
    out.append("</g>")
    lx = f.left + 4
    ly = f.top - 8
    for d in directions:
        out.append(f'<circle cx="{lx}" cy="{ly - 4}" r="4" fill="{color[d]}"/>')
        out.append(f'<text x="{lx + 7}" y="{ly}" class="legend">{escape(d)}</text>')
        lx += 14 + 7 * len(d) + 12
    out.append(
        f'<path d="M{lx - 3} {ly - 7}L{lx + 3} {ly - 1}M{lx - 3} {ly - 1}L{lx + 3} {ly - 7}" stroke="{ERROR_COLOR}"/>'
    )
    out.append(f'<text x="{lx + 7}" y="{ly}" class="legend">error</text>')
    if stride > 1:
        out.append(
            f'<text x="{f.left + f.pw - 4}" y="{f.top - 6}" class="tick" text-anchor="end">'
            f"1 in {stride} successful requests drawn</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


def throughput_timeline(journal: dict[str, Any]) -> str:
    """Completed requests per bin (successes grey, errors red, stacked), faults shaded."""
    scale = float(journal.get("time_scale") or 1)
    reqs = journal.get("requests") or []
    duration = max(float(journal.get("duration_s") or 0), 1e-3)
    end_s = max(duration * scale, 1.0)
    bins = max(10, min(120, math.ceil(duration * 2)))
    width_s = end_s / bins
    ok = [0] * bins
    bad = [0] * bins
    for r in reqs:
        t = (r["t"] + r["latency_ms"] / 1000) * scale
        i = min(bins - 1, max(0, int(t / width_s)))
        (ok if r.get("error") is None else bad)[i] += 1
    f = Frame(height=200)
    xs = LinScale(0, end_s, f.left, f.left + f.pw)
    top = max([a + b for a, b in zip(ok, bad, strict=True)] + [1])
    ys = LinScale(0, top * 1.1, f.top + f.ph, f.top)
    out = _open(f, "Requests completed over time", "plot throughput")
    out += _fault_bands(f, xs, journal.get("faults") or [], end_s)
    for v in ys.ticks(4):
        y = ys(v)
        out.append(
            f'<line x1="{f.left}" y1="{_num(y)}" x2="{_num(f.left + f.pw)}" y2="{_num(y)}" class="grid"/>'
        )
        out.append(
            f'<text x="{f.left - 6}" y="{_num(y + 4)}" class="tick" text-anchor="end">{v:g}</text>'
        )
    out += _x_axis(f, xs, "scenario time (s)")
    bw = f.pw / bins
    for i in range(bins):
        x = f.left + i * bw
        y_ok = ys(ok[i])
        y_all = ys(ok[i] + bad[i])
        if ok[i]:
            out.append(
                f'<rect x="{_num(x)}" y="{_num(y_ok)}" width="{_num(max(bw - 1, 0.5))}" height="{_num(ys(0) - y_ok)}" fill="#9aa5b1"/>'
            )
        if bad[i]:
            out.append(
                f'<rect x="{_num(x)}" y="{_num(y_all)}" width="{_num(max(bw - 1, 0.5))}" height="{_num(y_ok - y_all)}" fill="{ERROR_COLOR}"/>'
            )
    out.append(
        f'<text x="{f.left + 4}" y="{f.top - 8}" class="tick">requests per {width_s:.3g} s of scenario time</text>'
    )
    out.append("</svg>")
    return "\n".join(out)


def cdf_plot(series: dict[str, list[tuple[float, float]]], title: str = "Latency CDF") -> str:
    """One step line per series of ``(value_ms, fraction)`` points, log x."""
    f = Frame(height=280)
    values = [v for pts in series.values() for v, _ in pts] or [1.0]
    xs = LogScale(min(values) / 1.2, max(values) * 1.2, f.left, f.left + f.pw)
    ys = LinScale(0, 1, f.top + f.ph, f.top)
    out = _open(f, title, "plot cdf")
    for v in xs.ticks():
        x = xs(v)
        out.append(
            f'<line x1="{_num(x)}" y1="{f.top}" x2="{_num(x)}" y2="{_num(f.top + f.ph)}" class="grid"/>'
        )
        out.append(
            f'<text x="{_num(x)}" y="{_num(f.top + f.ph + 14)}" class="tick" text-anchor="middle">{_fmt_ms(v)}</text>'
        )
    for q in (0, 0.5, 0.9, 0.99, 1.0):
        y = ys(q)
        out.append(
            f'<line x1="{f.left}" y1="{_num(y)}" x2="{_num(f.left + f.pw)}" y2="{_num(y)}" class="grid"/>'
        )
        out.append(
            f'<text x="{f.left - 6}" y="{_num(y + 4)}" class="tick" text-anchor="end">{q:g}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        if not pts:
            continue
        color = PALETTE[i % len(PALETTE)]
        d = [f"M{_num(xs(pts[0][0]))} {_num(ys(0))}"]
        prev = 0.0
        for v, q in pts:
            x = xs(v)
            d.append(f"L{_num(x)} {_num(ys(prev))}L{_num(x)} {_num(ys(q))}")
            prev = q
        out.append(
            f'<path class="cdfline" d="{"".join(d)}" stroke="{color}" fill="none" stroke-width="1.8"><title>{escape(name)}</title></path>'
        )
        out.append(
            f'<rect x="{f.left + 10}" y="{f.top + 8 + 16 * i}" width="10" height="10" fill="{color}"/>'
        )
        out.append(
            f'<text x="{f.left + 26}" y="{f.top + 17 + 16 * i}" class="legend">{escape(name)}</text>'
        )
    out.append(
        f'<text x="{_num(f.left + f.pw / 2)}" y="{f.height - 6}" class="axis" text-anchor="middle">latency</text>'
    )
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(items: Sequence[tuple[str, float]], *, unit: str = "bytes", title: str = "") -> str:
    """Horizontal bars, one per item; ``unit='bytes'`` formats values as KB/MB."""
    row = 26
    f = Frame(height=max(60, 20 + row * len(items)), left=170, top=10, bottom=10, right=120)
    top = max([v for _, v in items] + [1])
    out = _open(f, title or "bars", "plot bars")
    for i, (label, v) in enumerate(items):
        y = f.top + i * row + 4
        w = f.pw * v / top
        text = _fmt_bytes(v) if unit == "bytes" else f"{v:g}"
        out.append(
            f'<text x="{f.left - 8}" y="{y + 13}" class="legend" text-anchor="end">{escape(label)}</text>'
        )
        out.append(
            f'<rect class="bar" x="{f.left}" y="{y}" width="{_num(max(w, 0.5))}" height="{row - 8}" fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        out.append(
            f'<text x="{_num(f.left + w + 6)}" y="{y + 13}" class="tick">{escape(text)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
