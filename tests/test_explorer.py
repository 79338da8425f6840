"""The explorer's compute function: deterministic, honours every control, rejects bad settings."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from labkit.views.explorer import TABLE_METRICS, ExplorerSettings, explore, render

SMALL = ExplorerSettings(trace="bursty", strategy="forward")


def test_explore_is_deterministic_for_a_seed() -> None:
    first, second = explore(SMALL), explore(SMALL)
    assert first.result.metrics == second.result.metrics


def test_explore_passes_strategy_and_threshold_through() -> None:
    forward = explore(SMALL)
    rechunk = explore(ExplorerSettings(trace="bursty", strategy="rechunk", threshold_ms=100))
    assert rechunk.result.metrics.media_messages < forward.result.metrics.media_messages


def test_stall_rate_only_matters_on_the_stalls_link() -> None:
    calm = explore(ExplorerSettings(trace="realtime_jitter", link="stalls", stall_rate_per_s=0.0))
    stormy = explore(ExplorerSettings(trace="realtime_jitter", link="stalls", stall_rate_per_s=2.0))
    assert stormy.result.metrics.concealed_ms > calm.result.metrics.concealed_ms
    jittery = ExplorerSettings(link="jitter", stall_rate_per_s=2.0)
    assert jittery.link_params() == {"mean_ms": 50.0, "p99_ms": 150.0}


def test_table_has_one_row_per_metric_with_units() -> None:
    table = explore(SMALL).table()
    assert list(table.index) == list(TABLE_METRICS.values())
    assert all("(" in label for label in table.index)


def test_render_draws_the_timeline_with_the_result_in_its_title() -> None:
    view = explore(SMALL)
    ax = render(view)
    assert "underruns" in ax.get_title() and "ms" in ax.get_xlabel()
    plt.close("all")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("strategy", "teleport", "strategy"),
        ("link", "ideal", "link"),
        ("delay_ms", 0.0, "delay_ms"),
    ],
)
def test_bad_settings_are_rejected_by_name(field: str, value: object, message: str) -> None:
    settings = ExplorerSettings(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        explore(settings)


def test_widget_layer_updates_once_without_a_kernel() -> None:
    from labkit.views.explorer import Explorer

    explorer = Explorer(SMALL)
    view = explorer.update()
    assert view.settings == SMALL
    explorer.controls["strategy"].value = "preroll"
    assert explorer.view is not None and explorer.view.settings.strategy == "preroll"
