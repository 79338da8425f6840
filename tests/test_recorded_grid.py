"""labkit.sim.recorded_grid: lesson 07's 200-seed verdict grid, stored in data/results/, is what
the code computes now (a ~4 minute recomputation on two cores), and says what made it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from labkit.sim import recorded_grid
from labkit.sim.sensitivity import CLAIMS, PARAMETERS


def test_the_recorded_grid_is_what_the_code_computes_now() -> None:
    recorded = recorded_grid.load()
    fresh = recorded_grid.compute(jobs=2, progress=False)
    try:
        pd.testing.assert_frame_equal(fresh, recorded, check_exact=False, rtol=1e-9, atol=1e-12)
    except AssertionError as exc:
        pytest.fail(f"data/results/{recorded_grid.GRID_PATH.name} no longer matches the code; "
                    f"rerun `{recorded_grid.COMMAND}` and reread lesson 07's prose:\n{exc}")


def test_the_recorded_grid_covers_every_claim_and_value_and_says_what_made_it() -> None:
    recorded = recorded_grid.load()
    assert len(recorded) == len(CLAIMS) * sum(len(p.values) for p in PARAMETERS)
    assert set(recorded["claim"]) == {claim.text for claim in CLAIMS}
    sidecar = json.loads(recorded_grid.GRID_PATH.with_suffix(".json").read_text("utf-8"))
    assert sidecar == recorded_grid.provenance()
    assert sidecar["synthetic"] is True and sidecar["seeds"] == "0-199"


def test_writing_never_overwrites_without_replace(tmp_path: Path) -> None:
    out = tmp_path / "grid.csv"
    grid = pd.DataFrame({"claim": ["c"], "result": ["yes"], "mean": [0.1]})
    recorded_grid.write(grid, out)
    with pytest.raises(FileExistsError, match="--replace"):
        recorded_grid.write(grid.assign(result="no"), out)
    assert recorded_grid.load(out)["result"].tolist() == ["yes"]  # kept
    recorded_grid.write(grid.assign(result="no"), out, replace=True)
    assert recorded_grid.load(out)["result"].tolist() == ["no"]
    assert recorded_grid.main(["--out", str(out)]) == 1  # the command refuses too, before work


def test_a_missing_grid_names_the_command_that_makes_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"python -m labkit\.sim\.recorded_grid"):
        recorded_grid.load(tmp_path / "absent.csv")
