"""The judgements of lessons 06 and 07 refuse what they cannot judge (their results: lessons)."""

from __future__ import annotations

import pytest

from labkit.sim.hypotheses import HYPOTHESES, observation_runs
from labkit.sim.sensitivity import PARAMETERS, sensitivity
from labkit.traces import Trace, make_header, read, shipped, turn_event


def test_a_trace_without_audio_is_refused_not_judged() -> None:
    """With no answer heard, every run scored 0 gaps: each hypothesis was "ruled out" and each
    claim judged on a trace that says nothing."""
    silent = Trace(make_header("synthetic", "no audio"), [
        turn_event("turn_started", 0, "r"), turn_event("turn_ended", 5, "r")])  # fmt: skip
    with pytest.raises(ValueError, match="the trace has no audio"):
        observation_runs(silent, HYPOTHESES[:1], seeds=2, progress=False)
    with pytest.raises(ValueError, match="the trace has no audio"):
        sensitivity(silent, 2, parameters=PARAMETERS[:1], progress=False)


def test_no_seeds_is_refused_and_one_link_given_alone_is_one_link() -> None:
    """No seeds failed as ``KeyError: 'hypothesis'``; ``links="tcp"`` swept the links t, c, p."""
    trace = read(shipped("barge_in"))
    with pytest.raises(ValueError, match="no seeds given"):
        observation_runs(trace, HYPOTHESES[:1], seeds=[], progress=False)
    with pytest.raises(ValueError, match="no seeds given"):
        sensitivity(trace, 0, parameters=PARAMETERS[:1], progress=False)
    runs = observation_runs(trace, HYPOTHESES[:1], links="tcp", seeds=1, progress=False)
    assert set(runs["link"]) == {"tcp"} and len(runs) == 3  # one per observation


def test_compare_takes_one_link_alone_and_a_count_of_seeds() -> None:
    """``links="tcp"`` compared over the links t, c, p; no seeds gave an empty frame unsaid."""
    from labkit.sim.compare import compare

    trace = read(shipped("barge_in"))
    rows = compare(trace, {"forward": ("forward", 0.0)}, links="tcp", seeds=2, progress=False)
    assert rows["link"].tolist() == ["tcp", "tcp"] and rows["seed"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="compare: no seeds given"):
        compare(trace, {"forward": ("forward", 0.0)}, seeds=[], progress=False)
