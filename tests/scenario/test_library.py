from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from federation.scenario import load_scenario
from federation.scenario._model import FaultStep

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted((ROOT / "scenarios").glob("*.yaml"))
EXPECTED = {
    "tour", "ee-fi-federation", "central-server-partition", "partner-conf-expiry",
    "certificate-revocation", "ocsp-outage", "tsa-outage", "wan-latency", "once-only",
    "three-instances",
}  # fmt: skip


def test_library_is_complete() -> None:
    assert EXPECTED <= {p.stem for p in LIBRARY}


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_scenario_loads(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.description
    assert all(p.is_file() for p in sc.instances)
    assert sc.load is not None
    # every fault a scenario injects is healed by a later step
    names = [s.name for s in sc.steps if isinstance(s, FaultStep)]
    healed = {n for s in sc.steps if s.kind == "heal" for n in getattr(s, "names", ())}
    assert set(names) <= healed, path


def test_tour_fits_in_a_minute() -> None:
    sc = load_scenario(ROOT / "scenarios" / "tour.yaml")
    budget = 0.0
    for s in sc.steps:
        budget += (getattr(s, "window_s", 0) or 0) + (getattr(s, "within_s", 0) or 0)
        budget += getattr(s, "duration_s", 0) or 0
    assert budget / sc.time_scale < 30  # worst case of every step; plus federation start


# ---- the library against the real federation -------------------------------------------
#
# Every scenario runs through `run_scenario_cli` with the real federation in this process
# (`federation_starter(in_process=True)`), at its own time scale: raising it would shrink
# the scenario-time windows below the requests they need, and the long scenarios are long
# because X-Road's timers are (OCSP freshness 3600 s, failure period 1200 s...).

RUNS: dict[str, tuple[int, Path, str]] = {}


def run_library_scenario(name: str, run_dir: Path) -> tuple[int, Path, str]:
    """Run ``scenarios/<name>.yaml`` once per test session (the screenshot test reuses
    a run of the library test)."""
    from federation.scenario import run_scenario_cli
    from federation.topology.up import federation_starter

    if name not in RUNS:
        out = io.StringIO()
        code = run_scenario_cli(
            ROOT / "scenarios" / f"{name}.yaml",
            run_dir,
            start_federation=federation_starter(in_process=True),
            out=out,
            progress=False,
        )
        RUNS[name] = (code, run_dir, out.getvalue())
    return RUNS[name]


@pytest.mark.slow
@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_scenario_passes(path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    code, run_dir, text = run_library_scenario(path.stem, tmp_path_factory.mktemp(path.stem))
    assert code == 0, text
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "passed"
    assert journal["expectations"]
    assert all(e["passed"] for e in journal["expectations"])
    assert all(c["passed"] for c in journal["checks"])
    assert (run_dir / "report.html").is_file()
    checks = {c["name"]: c for c in journal["checks"]}
    if "no_lost_messages" in checks:
        # the audit behind it: nothing failed or orphaned, every success complete
        figs = checks["no_lost_messages"]["figures"]
        assert figs["failed"] == figs["orphaned"] == 0
        assert figs["complete_exchanges"] >= figs["journal_exchanges"] > 0


def test_broken_scenario_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from federation.cli import main

    bad = tmp_path / "bad.yaml"
    text = (ROOT / "scenarios" / "wan-latency.yaml").read_text()
    text = text.replace("ms: 20, jitter_ms: 5", "ms: 20ms, jitter_ms: 5")
    text = text.replace("../instances/", f"{ROOT}/instances/")
    bad.write_text(text)
    code = main(["run", str(bad), "--run-dir", str(tmp_path / "run"), "--in-process"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {bad}:")
    assert "steps[2].fault.latency.ms" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was started


# ---- the report of a real run, in a real browser -----------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        path = shutil.which(name)
        if path:
            return path
    return None


def decode_png(data: bytes) -> tuple[int, int, list[bytes], int]:
    """(width, height, RGB(A) rows, bytes per pixel) of an 8-bit RGB/RGBA PNG (stdlib)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, []
    width = height = bpp = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, interlace) == (8, 0)
            assert ctype in (2, 6)  # RGB, RGBA
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        f, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        if f == 1:  # Sub
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif f == 2:  # Up
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif f == 3:  # Average
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 255
        elif f == 4:  # Paeth
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


PLOT_BG = (252, 252, 253)  # .plotbg{fill:#fcfcfd}: only the plots' drawing areas


@pytest.mark.slow
def test_report_of_a_real_run_shows_the_plots(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "Chromium not found: the report screenshot needs Debian's chromium "
            "(`make chromium` installs it)"
        )
    code, run_dir, text = run_library_scenario("tour", tmp_path_factory.mktemp("tour"))
    assert code == 0, text
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--window-size=1100,2600", f"--screenshot={shot}",
         (run_dir / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    width, height, rows, bpp = decode_png(shot.read_bytes())
    assert (width, height) == (1100, 2600)

    def px(x: int, y: int) -> tuple[int, int, int]:
        r = rows[y]
        return r[x * bpp], r[x * bpp + 1], r[x * bpp + 2]

    # the plot region: where the plots' own background colour is painted
    xs, ys = [], []
    for y in range(0, height, 2):
        for x in range(0, width, 2):
            if px(x, y) == PLOT_BG:
                xs.append(x)
                ys.append(y)
    assert ys, "no plot on the screenshot"
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    assert x1 - x0 > 400, (x0, x1)
    assert y1 - y0 > 150, (y0, y1)
    # inside it: the request dots (saturated palette colours), the shaded fault window
    # (partition red at 15 % over the plot background) and the error crosses
    dots = shade = crosses = 0
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            r, g, b = px(x, y)
            if max(r, g, b) - min(r, g, b) > 60 and not (r > 150 and g < 90):
                dots += 1
            elif 238 <= r <= 252 and 208 <= g <= 230 and 208 <= b <= 232 and r - g > 15:
                shade += 1
            if r > 170 and g < 90 and b < 90:
                crosses += 1
    assert dots > 100, dots
    assert shade > 5_000, shade
    assert crosses > 10, crosses
