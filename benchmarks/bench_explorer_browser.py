"""Change -> figure latency of the explorer, as the browser sees it (lesson 03 in JupyterLab).

Starts ``labkit lab --no-browser`` on a free port of 127.0.0.1 (working copies in a temporary
directory), opens notebooks/03_explorer.ipynb in Debian's Chromium under Playwright, runs it with
Run > Run All Cells, then on each trace picks options in the explorer's dropdowns and times, in
the page, from the change event to the first animation frame whose figure pixels differ (and are
drawn: not blank). Every change makes settings not seen before (no cache hit): strategies cycle
within each playout model, so the numbers are the uncached case. Then, per trace, "after a rest":
strategy switches each made after the controls rested ``REST_S``, when the explorer has computed
the other strategies' runs (what a person comparing strategies at their own pace gets).

The probe reads the figure's pixels after each draw into its canvas (``--probe draws``).
``--probe frames`` reads them every animation frame, as this benchmark first did: hashing the
canvas each frame keeps the page's one thread busy and delays the image it waits for.
``--probe both`` runs each probe on a fresh server and kernel, one after the other, to compare.

    .venv/bin/python benchmarks/bench_explorer_browser.py [--json out.json] [--probe both]

Prints median and p90 per trace. Needs /usr/bin/chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "browser"))

import browser_pages as pages

TRACES = ("tiny_deltas", "long_conversation")
STRATEGIES = ("forward", "rechunk", "paced", "preroll", "adaptive")
PLAYOUTS = ("frame_clock", "prefetch", "fifo")
RESTED_PLAYOUT = "frame_clock_skip"  # not in PLAYOUTS: its runs are new to the rested series
REST_S = 1.5  # longer than the explorer's rest (0.4 s) and its runs of the other strategies


def changes() -> list[tuple[str, str]]:
    """(control, option) pairs, each making settings not seen before on the current trace."""
    steps: list[tuple[str, str]] = []
    current = STRATEGIES[0]
    for playout in PLAYOUTS:
        steps.append(("playout", playout))
        for strategy in [s for s in STRATEGIES if s != current]:
            steps.append(("strategy", strategy))
            current = strategy
    return steps


def measure(page: object, trace: str, ink_min: float, probe: str) -> list[float]:
    for control, option in (("strategy", STRATEGIES[0]), ("playout", PLAYOUTS[-1]),
                            ("trace", trace)):  # the same start on each trace
        pages.change_and_time(page, control, option, ink_min=ink_min, probe=probe)
    return [pages.change_and_time(page, control, option, ink_min=ink_min, probe=probe)
            for control, option in changes()]


def measure_rested(page: Any, ink_min: float, probe: str) -> list[float]:
    """Strategy switches, each after the controls rested ``REST_S``: the explorer has computed
    the other strategies meanwhile, so these show kept runs."""
    pages.change_and_time(page, "playout", RESTED_PLAYOUT, ink_min=ink_min, probe=probe)
    latencies = []
    for strategy in STRATEGIES:
        page.wait_for_timeout(REST_S * 1000)
        elapsed = pages.change_and_time(page, "strategy", strategy, ink_min=ink_min, probe=probe)
        if elapsed >= 0:  # -1: it was the strategy shown
            latencies.append(elapsed)
    return latencies


def session(browser: Any, probe: str, ink_min: float) -> dict[str, list[float]]:
    """Latencies per trace, measured with ``probe`` on a fresh server and kernel."""
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as home, pages.jupyter_lab(Path(home)) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        pages.open_notebook(page, server, "03_explorer.ipynb")
        pages.run_all(page)
        try:
            pages.scroll_to_explorer(page, timeout_ms=5000)
        except AssertionError:  # the explorer of before has no class to find it by
            pages.install_helpers(page)
        try:
            pages.wait_for_drawn_figure(page, timeout_ms=10_000)
            print("after Run All: the first figure is drawn")
        except AssertionError as blank:
            print(f"after Run All: {blank}; a first change draws it")
            pages.change_and_time(page, "strategy", STRATEGIES[1], ink_min=ink_min, probe=probe)
        try:
            for trace in TRACES:
                results[trace] = measure(page, trace, ink_min, probe)
                results[f"{trace}, after a rest"] = measure_rested(page, ink_min, probe)
        except AssertionError:
            shot = Path(tempfile.gettempdir()) / "bench-explorer-failure.png"
            pages.screenshot(page, shot)
            print(f"the page as it was: {shot}", file=sys.stderr)
            raise
        page.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the raw latencies here")
    parser.add_argument("--ink-min", type=float, default=pages.INK_MIN,
                        help="a figure counts as drawn with this fraction of inked pixels "
                        f"(default {pages.INK_MIN}; 0 times any new image, blank or not)")
    parser.add_argument("--probe", choices=[*pages.PROBES, "both"], default="draws",
                        help="read the figure after each draw (default) or every frame; both: "
                        "each on a fresh server, one after the other")
    args = parser.parse_args()
    reason = pages.skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    probes = list(pages.PROBES) if args.probe == "both" else [args.probe]
    results: dict[str, dict[str, list[float]]] = {}
    with pages.chromium() as browser:
        for probe in probes:
            results[probe] = session(browser, probe, args.ink_min)
    for probe, by_trace in results.items():
        for trace, latencies in by_trace.items():
            median, p90 = pages.median_p90(latencies)
            print(f"{trace:>30} (probe {probe}): change -> figure median {median:.0f} ms, "
                  f"p90 {p90:.0f} ms ({len(latencies)} changes; min {min(latencies):.0f}, "
                  f"max {max(latencies):.0f})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
