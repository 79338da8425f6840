"""The side-by-side harness really runs both servers on the same calls: the SDK's Twilio example
(imported from shared/reference at run time, its model config pointed at the Realtime emulator by
wrapping ``RealtimeRunner.run``) and labkit's, every call byte-exact, each server's messages as
its code sends them. A smoke run (2 calls, x8); the figures come from the benchmark itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_live_vs_upstream as bench  # noqa: E402

REFERENCE = next((p for p in bench.REFERENCE_CANDIDATES if (p / bench.UPSTREAM_FILE).is_file()),
                 None)  # fmt: skip


@pytest.mark.skipif(REFERENCE is None, reason="shared/reference is not beside this checkout")
@pytest.mark.parametrize("model", ["emulator", "replay"])
def test_both_servers_answer_the_same_calls_byte_exact(tmp_path: Path, model: str) -> None:
    out = tmp_path / "batches.json"
    argv = ["--n", "2", "--rounds", "1", "--trace", "tiny_deltas", "--speed", "8", "--model",
            model, "--peer-procs", "1", "--json", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    batches = {b["server"]: b for b in json.loads(out.read_text())["batches"]}
    for batch in batches.values():
        assert batch["calls_ok"] == batch["byte_exact"] == 2
        assert batch["cpu_s"] > 0
    deltas = 1486  # tiny_deltas: the example sends a media and a mark per delta
    assert batches["upstream"]["media_per_call"] == batches["upstream"]["marks_per_call"] == deltas
    assert batches["labkit"]["media_per_call"] == deltas  # forward: one media per delta...
    assert batches["labkit"]["marks_per_call"] < deltas / 10  # ...and a mark per 100 ms
    assert (batches["labkit"]["emulator_cpu_s"] > 0) == (model == "emulator")


def test_the_profile_is_summed_by_layer_and_by_job(tmp_path: Path) -> None:
    collapsed = tmp_path / "x.collapsed"
    collapsed.write_text(
        "main (a.py:1);Handle._run (asyncio/events.py:80);TwilioHandler._to_model "
        "(labkit/live/handler.py:270);RealtimeSession.send_audio (agents/realtime/session.py:382);"
        "BaseModel.model_dump_json (pydantic/main.py:587) 3\n"
        "main (a.py:1);EpollSelector.select (selectors.py:468) 1\n"
    )
    assert bench.layer_shares(collapsed) == {"pydantic": 0.75,
                                             "asyncio event loop and transports": 0.25}  # fmt: skip
    jobs = bench.job_shares(collapsed)
    assert jobs[bench.JOBS[0][0]] == 0.75 and jobs[bench.JOBS[-1][0]] == 0.25


def test_what_deflate_saves_is_computed_on_the_trace_and_the_shipped_speech() -> None:
    from labkit.traces import shipped

    text = bench.deflate_gain(Path(shipped("tiny_deltas")))
    assert text.count(" -> ") == 3 and "us CPU per message" in text
