"""Plot helpers: each returns its axes, labels them with units, and draws what its input holds."""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection, PolyCollection

from labkit import plots
from labkit.sim import simulate
from labkit.traces import read, shipped

UNIT_WORDS = ("ms", "count", "fraction", "message", "metric")


@pytest.fixture(autouse=True)
def _close_figures() -> None:
    yield
    plt.close("all")


def has_units(label: str) -> bool:
    return any(word in label for word in UNIT_WORDS)


def tiny_schedule() -> pd.DataFrame:
    """Three 20 ms messages of one item; the third arrives 30 ms late (one gap), then a mark row."""
    rows = [
        ("media", "a", 0, 0, 160, 0, 0.0, 10.0, 10.0, 30.0),
        ("media", "a", 0, 160, 160, 0, 1.0, 11.0, 30.0, 50.0),
        ("media", "a", 0, 320, 160, 0, 2.0, 80.0, 80.0, 100.0),
        ("mark", "a", 0, 480, 0, 0, 2.0, 80.0, np.nan, np.nan),
    ]
    columns = [
        "kind",
        "item_id",
        "content_index",
        "offset",
        "size",
        "generation",
        "sent_ms",
        "arrived_ms",
        "play_start_ms",
        "play_end_ms",
    ]
    return pd.DataFrame(rows, columns=columns)


def test_playout_gaps_finds_the_silence_inside_an_item() -> None:
    gaps = plots.playout_gaps(tiny_schedule())
    assert list(gaps["gap_ms"]) == [30.0]
    assert list(gaps["start_ms"]) == [50.0]


def test_playout_gaps_ignores_pauses_between_items() -> None:
    schedule = tiny_schedule()
    schedule.loc[2, "item_id"] = "b"
    assert plots.playout_gaps(schedule).empty


def test_packet_timeline_draws_sent_arrived_played_and_gaps() -> None:
    ax = plots.packet_timeline(tiny_schedule())
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    segments = [c for c in ax.collections if isinstance(c, LineCollection)]
    shaded = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(scatters) == 2 and all(len(s.get_offsets()) == 3 for s in scatters)
    assert len(segments) == 1 and len(segments[0].get_segments()) == 3
    assert len(shaded) == 1 and len(shaded[0].get_paths()) == 1
    assert has_units(ax.get_xlabel()) and has_units(ax.get_ylabel()) and ax.get_title()


def test_packet_timeline_uses_the_given_axes_and_window() -> None:
    _, given = plt.subplots()
    ax = plots.packet_timeline(tiny_schedule(), ax=given, window_ms=(0.0, 40.0))
    assert ax is given
    assert ax.get_xlim() == (0.0, 40.0)
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_packet_timeline_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="play_start_ms"):
        plots.packet_timeline(tiny_schedule().drop(columns=["play_start_ms"]))


def test_fifo_playout_draws_one_bar_per_message_and_shades_gaps() -> None:
    ax = plots.fifo_playout([0, 5, 60], [20, 20, 20], [0, 20, 60])
    assert len(ax.patches) == 3
    shaded = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(shaded) == 1 and len(shaded[0].get_paths()) == 1
    assert has_units(ax.get_xlabel()) and has_units(ax.get_ylabel())


def test_fifo_playout_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        plots.fifo_playout([0, 1], [20], [0, 20])


def test_gap_distribution_draws_one_curve_per_label() -> None:
    ax = plots.gap_distribution(
        {"forward": [1.0, 2.0, 5.0], "rechunk 50 ms": [50.0, 50.0], "empty": []}
    )
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata()[-1], 1.0)
    assert has_units(ax.get_xlabel()) and has_units(ax.get_ylabel())


def test_strategy_vs_frontier_draws_line_and_a_coloured_point_per_strategy() -> None:
    frontier = pd.DataFrame({"preroll_ms": [0, 50, 100], "concealed_ms": [300, 80, 0]})
    points = pd.DataFrame(
        {"strategy": ["forward", "preroll"], "preroll_ms": [0, 120], "concealed_ms": [300, 0]}
    )
    ax = plots.strategy_vs_frontier(frontier, points)
    assert len(ax.lines) == 1
    assert [len(c.get_offsets()) for c in ax.collections] == [1, 1]
    colours = {tuple(c.get_facecolor()[0]) for c in ax.collections}
    assert len(colours) == 2, "one colour per strategy"
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["oracle frontier", "forward", "preroll"]
    assert not ax.texts, "a legend, not labels that collide"
    assert has_units(ax.get_xlabel()) and has_units(ax.get_ylabel())


def test_strategy_vs_frontier_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="concealed_ms"):
        plots.strategy_vs_frontier(
            pd.DataFrame({"preroll_ms": [0]}), pd.DataFrame({"strategy": ["x"], "preroll_ms": [0]})
        )


def test_arrivals_vs_simulation_draws_a_point_per_matched_message_and_the_median() -> None:
    arrivals = pd.DataFrame({"media_s": [0.0, 0.05, 0.1, 0.15],
                             "difference_ms": [10.0, 12.0, float("nan"), 30.0]})
    ax = plots.arrivals_vs_simulation(arrivals)
    points, median = ax.get_lines()
    assert list(points.get_ydata()) == [10.0, 12.0, 30.0]  # the unmatched message is left out
    assert list(median.get_ydata()) == [12.0, 12.0]
    assert has_units(ax.get_xlabel()) and has_units(ax.get_ylabel())


def test_arrivals_vs_simulation_refuses_a_call_with_nothing_matched() -> None:
    with pytest.raises(ValueError, match="no message matched"):
        plots.arrivals_vs_simulation(pd.DataFrame({"media_s": [0.0],
                                                   "difference_ms": [float("nan")]}))


def test_stale_audio_vs_lead_draws_one_line_per_group() -> None:
    curves = pd.DataFrame(
        {"lead_ms": [0, 100, 0, 100], "stale_ms": [0, 100, 0, 90], "trace": ["a", "a", "b", "b"]}
    )
    ax = plots.stale_audio_vs_lead(curves, by="trace")
    assert len(ax.lines) == 2
    assert list(ax.lines[0].get_xdata()) == [0, 100]
    assert has_units(ax.get_xlabel()) and has_units(ax.get_ylabel())


def test_metric_vs_setting_draws_lines_and_reference_lines() -> None:
    table = pd.DataFrame(
        {
            "threshold_ms": [20, 40, 20, 40],
            "underrun_ms": [5, 3, 9, 1],
            "strategy": ["rechunk", "rechunk", "paced", "paced"],
        }
    )
    ax = plots.metric_vs_setting(
        table,
        x="threshold_ms",
        y="underrun_ms",
        by="strategy",
        xlabel="threshold (ms)",
        ylabel="underrun (ms)",
        vlines={"D* trace": 30.0},
        hline=("150 ms", 150.0),
    )
    assert len(ax.lines) == 4  # two curves, one vertical, one horizontal reference
    assert has_units(ax.get_xlabel()) and has_units(ax.get_ylabel())


def test_plots_name_the_columns_their_input_lacks() -> None:
    empty = pd.DataFrame({"unrelated": [1.0]})
    with pytest.raises(ValueError, match=r"schedule lacks the column\(s\) \["):
        plots.packet_timeline(empty)
    with pytest.raises(ValueError, match=r"curves lacks the column\(s\) \['lead_ms', 'stale_ms'\]"):
        plots.stale_audio_vs_lead(empty)
    with pytest.raises(ValueError, match=r"frontier lacks the column\(s\)"):
        plots.strategy_vs_frontier(empty, empty)


def test_latency_vs_underruns_marks_where_each_strategy_starts() -> None:
    frame = pd.DataFrame({
        "strategy": ["rechunk"] * 4 + ["paced"] * 4, "threshold_ms": [200, 20, 200, 20] * 2,
        "concealed_ms": [1.0, 9.0, 3.0, 11.0, 0.0, 50.0, 0.0, 70.0],
        "mean_lag_ms": [90.0, 10.0, 110.0, 30.0, 60.0, 5.0, 80.0, 5.0],
    })  # fmt: skip
    ax = plots.latency_vs_underruns(frame)
    opened = [line for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
    starts = sorted((float(line.get_xdata()[0]), float(line.get_ydata()[0]))
                    for line in opened if len(line.get_xdata()))  # fmt: skip
    assert starts == [(10.0, 20.0), (60.0, 5.0)]  # each strategy's 20 ms mean, not its 200 ms
    assert "smallest threshold (20 ms)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_sweep_plots_and_summaries_name_what_they_lack_instead_of_drawing_nothing() -> None:
    """An empty frame failed with ``KeyError: 'strategy'``; a strategy or link not in the frame
    drew empty axes without a word; a misspelt metric was dropped from the summary unsaid."""
    from labkit.sim import sweep
    from labkit.sim.summary import paired_difference, summarize

    runs = sweep("barge_in", ["forward", "preroll"], [50, 100], ["tcp"], seeds=2, progress=False)
    with pytest.raises(ValueError, match="sweep frame lacks the column"):
        plots.metric_vs_threshold(pd.DataFrame())
    with pytest.raises(ValueError, match=r"no rows for strategy 'paced'; the frame has forward"):
        plots.metric_vs_threshold(runs, strategies=["paced"])
    with pytest.raises(ValueError, match=r"metric_by_link: no rows for link 'jitter'"):
        plots.metric_by_link(runs, links=["jitter"])
    with pytest.raises(ValueError, match=r"summarize: metrics: no column 'concealed_msec'"):
        summarize(runs, metrics=("concealed_ms", "concealed_msec"))
    with pytest.raises(ValueError, match=r"paired_difference: no column 'nope'"):
        paired_difference(runs, "nope", "strategy", "preroll", "forward")
    assert "mos_lqo_mean" not in summarize(runs)  # the default list keeps what the runs have
    assert len(plots.metric_by_link(runs)) == 1
    two_links = sweep("barge_in", "paced", [20, 60], ["tcp", "jitter"], seeds=1, progress=False)
    with pytest.raises(ValueError, match=r"the rows hold 2 links \(jitter, tcp\); pick one"):
        plots.metric_vs_threshold(two_links)  # drawn as one zig-zag line through both
    with pytest.raises(ValueError, match=r"latency_vs_underruns: the rows hold 2 links"):
        plots.latency_vs_underruns(two_links)
    assert len(plots.metric_by_link(two_links)) == 2


@pytest.mark.parametrize("playout", ["fifo", "frame_clock", "frame_clock_skip", "prefetch"])
@pytest.mark.parametrize("name", ["multi_turn", "barge_in", "long_conversation"])
def test_the_gaps_drawn_are_the_gaps_counted(name: str, playout: str) -> None:
    """The timeline shades exactly the gaps the metrics count, also where a frame clock plays a
    message in pieces (the red spans missed 26 of 32 gaps of long_conversation)."""
    run = simulate(read(shipped(name)), "forward", 50, "jitter", playout, seed=2)
    gaps = plots.playout_gaps(run)
    assert len(gaps) == run.metrics.concealment_events
    assert gaps["gap_ms"].sum() == pytest.approx(run.metrics.concealed_ms, abs=1e-6)
    assert plots.playout_gaps(run.schedule, run.pieces).equals(gaps)


def test_playout_gaps_tells_answers_apart_by_content_index_and_clears() -> None:
    """Content 1 of item a after content 0, and item a's audio after a clear inside it: neither
    silence is a gap (as the metrics count it)."""
    schedule = tiny_schedule()
    schedule.loc[2, "content_index"] = 1
    assert plots.playout_gaps(schedule).empty
    cleared = pd.concat([schedule.iloc[:2], schedule.iloc[[3]].assign(kind="clear"),
                         tiny_schedule().iloc[[2]]], ignore_index=True)  # fmt: skip
    assert plots.playout_gaps(cleared).empty
    assert list(plots.playout_gaps(tiny_schedule())["gap_ms"]) == [30.0]


def test_packet_timeline_refuses_a_window_that_runs_backwards() -> None:
    with pytest.raises(ValueError, match=r"window_ms must run from an earlier to a later time"):
        plots.packet_timeline(tiny_schedule(), window_ms=(500.0, 100.0))


def test_another_column_is_labelled_by_its_name_not_the_defaults_words() -> None:
    frontier = pd.DataFrame({"preroll_ms": [0.0, 100.0], "mean_lag_ms": [50.0, 0.0]})
    points = pd.DataFrame({"preroll_ms": [50.0], "mean_lag_ms": [20.0], "strategy": ["paced"]})
    ax = plots.strategy_vs_frontier(frontier, points, y="mean_lag_ms")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("pre-roll / added delay (ms)", "mean_lag_ms")
    curves = pd.DataFrame({"lead_ms": [0.0, 100.0], "played_ms": [1.0, 2.0]})
    assert plots.stale_audio_vs_lead(curves, y="played_ms").get_ylabel() == "played_ms"


def test_intervals_by_link_names_what_does_not_fit() -> None:
    table = pd.DataFrame({"mean": [1.0, 2.0], "ci_low": [0.5, 1.5], "ci_high": [1.5, 2.5]},
                         index=pd.MultiIndex.from_tuples([("tcp", "forward"),
                                                          ("jitter", "forward")]))  # fmt: skip
    _, one = plt.subplots()
    with pytest.raises(ValueError, match=r"2 links \(tcp, jitter\) need as many axes, got 1"):
        plots.intervals_by_link(table, [one], xlabel="silence in gaps (ms)")
    with pytest.raises(ValueError, match=r"the table has no rows to draw"):
        plots.intervals_by_link(table.iloc[:0], xlabel="silence in gaps (ms)")


def test_empty_data_draws_no_legend_and_no_warning() -> None:
    """matplotlib warned "No artists with labels found to put in legend"."""
    _, ax = plt.subplots()  # (a notebook backend may warn of its own when a figure is made)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert plots.gap_distribution({}, ax).get_legend() is None


def test_gaps_text_refuses_lengths_that_are_not_times() -> None:
    with pytest.raises(ValueError, match=r"gap lengths must be finite ms >= 0, got \[nan, 1.0\]"):
        plots.gaps_text([math.nan, 1.0])
