"""Lesson 07's verdict grid over 200 seeds, recorded once and checked in CI.

Twenty seeds leave a quarter of the grid "cannot tell" (lesson 09: where gaps are rare, twenty
seeds hide small differences); two hundred take about four minutes on two cores, too long for a
lesson that should run in a minute or two. So the 200-seed grid is computed by this module's
command, stored in ``data/results/`` with what made it, read by the lesson, and recomputed by
``tests/test_recorded_grid.py`` in CI, which fails if the stored grid differs from what the code
now computes by more than float noise. Regenerate after a change that moves it:

    python -m labkit.sim.recorded_grid --replace

See notebooks/07_where_verdicts_flip.ipynb.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from labkit.sim.sensitivity import CLAIMS, sensitivity
from labkit.traces import read, shipped

TRACE = "tiny_deltas_call"
SEEDS = range(200)
RESULTS_DIR = Path(__file__).resolve().parents[2] / "data" / "results"
GRID_PATH = RESULTS_DIR / "verdict_grid_200_seeds.csv"
COMMAND = "python -m labkit.sim.recorded_grid --replace"


def compute(jobs: int = 2, progress: bool = True) -> pd.DataFrame:
    """The grid of lesson 07's six claims on ``TRACE`` over ``SEEDS`` (``sensitivity``'s rows)."""
    return sensitivity(read(shipped(TRACE)), SEEDS, claims=CLAIMS, jobs=jobs, progress=progress)


def provenance() -> dict[str, Any]:
    """What made the grid: trace, seeds, claims and the command (stored beside it)."""
    return {"synthetic": True, "trace": TRACE, "seeds": f"{SEEDS.start}-{SEEDS.stop - 1}",
            "claims": [claim.text for claim in CLAIMS],
            "made_by": f"{COMMAND} (labkit.sim.sensitivity.sensitivity, jobs=2)",
            "checked_by": "tests/test_recorded_grid.py recomputes it in CI"}  # fmt: skip


def load(path: Path = GRID_PATH) -> pd.DataFrame:
    """The recorded grid, as ``sensitivity`` returns it; a clear error if it is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"no recorded verdict grid at {path}; make it with `{COMMAND}`")
    return pd.read_csv(path)


def write(grid: pd.DataFrame, path: Path = GRID_PATH, replace: bool = False) -> None:
    """Store ``grid`` at ``path`` with its provenance beside it (``.json``); refuses to
    overwrite unless ``replace``."""
    if not replace:
        _refuse_to_overwrite(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.to_csv(path, index=False)  # floats as repr: read back exactly
    made_by = json.dumps(provenance(), indent=2) + "\n"
    path.with_suffix(".json").write_text(made_by, encoding="utf-8")


def _refuse_to_overwrite(path: Path) -> None:
    """A FileExistsError if the grid at ``path`` or its provenance beside it exists."""
    for existing in (path, path.with_suffix(".json")):
        if existing.exists():
            raise FileExistsError(f"{existing} exists; pass --replace to recompute it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.sim.recorded_grid",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--replace", action="store_true", help="overwrite the recorded grid")
    parser.add_argument("--out", type=Path, default=GRID_PATH, help="where to write it")
    args = parser.parse_args(argv)
    try:
        if not args.replace:
            _refuse_to_overwrite(args.out)  # before four minutes of runs, not after
        write(compute(), args.out, replace=args.replace)
    except FileExistsError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"wrote {args.out} and {args.out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
