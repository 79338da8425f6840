"""Page load -> first drawn figure of ``labkit explore``, with and without a warm kernel.

For each ``--warm-kernels`` value given, starts ``labkit explore --no-browser`` on a free port of
127.0.0.1 (a fresh server), waits ``--settle-s`` (the warm kernel starts and runs the explorer
meanwhile, as it does while a person's browser opens), then loads the page ``--loads`` times in
Debian's Chromium under Playwright, ``--gap-s`` apart, timing each from the request to the first
figure with ink (``browser_pages.wait_for_drawn_figure``). With a warm kernel a load takes one that
has already run the notebook, and Voila starts the next one in the background.

    .venv/bin/python benchmarks/bench_explore_first_figure.py [--warm-kernels 0,1] [--loads 3]

Prints each load and the medians, and their ratio to the first setting. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "browser"))

import browser_pages as pages


def first_figure_s(browser: object, server: pages.Server) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    try:
        start = time.monotonic()
        pages.open_explore_page(page, server, timeout_ms=120_000)
        return time.monotonic() - start
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm-kernels", default="0,1", help="settings to compare, in order")
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--settle-s", type=float, default=20.0)
    parser.add_argument("--gap-s", type=float, default=10.0, help="between loads")
    args = parser.parse_args()
    reason = pages.skip_reason()
    if reason:
        sys.exit(reason)
    medians: dict[str, float] = {}
    with pages.chromium() as browser, tempfile.TemporaryDirectory() as home:
        for warm in args.warm_kernels.split(","):
            server_home = Path(home) / f"warm-{warm}"
            server_home.mkdir()
            with pages.explore_app(server_home, "--warm-kernels", warm) as server:
                time.sleep(args.settle_s)
                times = []
                for load in range(args.loads):
                    if load:
                        time.sleep(args.gap_s)
                    times.append(first_figure_s(browser, server))
                    print(f"--warm-kernels {warm}: load {load + 1}: first figure in "
                          f"{times[-1]:.2f} s", flush=True)  # fmt: skip
            medians[warm] = statistics.median(times)
    base = next(iter(medians.values()))
    for warm, median in medians.items():
        print(f"--warm-kernels {warm}: median {median:.2f} s ({median / base:.2f}x the first)")


if __name__ == "__main__":
    main()
