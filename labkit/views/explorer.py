"""The explorer: pick a trace, strategy, threshold, link and playout model; see and hear the call.

``explore(settings)`` is a plain function (the notebook asserts on it, nbval runs it); ``render``
draws its timeline; ``Explorer`` is a thin ipywidgets layer that calls both on every change.
See notebooks/03_explorer.ipynb.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import pandas as pd
from matplotlib.axes import Axes

from labkit.outbound import STRATEGY_NAMES
from labkit.plots.timeline import packet_timeline
from labkit.sim import PLAYOUT_NAMES, SimResult, prepare, simulate
from labkit.sim.simulator import PreparedTrace
from labkit.traces import read, shipped

P99_OVER_MEAN = 3.0  # the jitter links' 99th percentile delay, as a multiple of the mean
EXPLORER_LINKS = ("jitter", "correlated", "stalls")
TABLE_METRICS = {  # Metrics field -> row label (with its unit)
    "media_messages": "media messages (count)",
    "concealment_events": "underrun events (count)",
    "concealed_ms": "underrun (ms)",
    "interruption_count": "gaps >= 150 ms (count)",
    "mean_time_to_first_audio_ms": "time to first audio (ms)",
    "mean_lag_ms": "mean lag behind real time (ms)",
    "mean_added_latency_ms": "mean wait in Twilio's queue (ms)",
    "oracle_min_delay_ms": "oracle D* (ms)",
}


@dataclass(frozen=True)
class ExplorerSettings:
    """Everything the explorer's controls set."""

    trace: str = "tiny_deltas"
    strategy: str = "forward"
    threshold_ms: float = 50.0
    link: str = "jitter"
    delay_ms: float = 50.0  # mean one-way delay (jitter, correlated) or base delay (stalls)
    stall_rate_per_s: float = 0.2  # only for the stalls link
    playout: str = "fifo"
    seed: int = 0

    def link_params(self) -> dict[str, float]:
        """The link model's parameters for these settings."""
        if self.link == "stalls":
            return {"delay_ms": self.delay_ms, "rate_per_s": self.stall_rate_per_s}
        return {"mean_ms": self.delay_ms, "p99_ms": self.delay_ms * P99_OVER_MEAN}

    def check(self) -> None:
        """Reject settings the controls could not produce, naming the bad one."""
        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(f"explorer: unknown strategy {self.strategy!r}")
        if self.link not in EXPLORER_LINKS:
            raise ValueError(f"explorer: link must be one of {EXPLORER_LINKS}, got {self.link!r}")
        if self.playout not in PLAYOUT_NAMES:
            raise ValueError(f"explorer: unknown playout {self.playout!r}")
        if self.delay_ms <= 0 or self.stall_rate_per_s < 0 or self.threshold_ms < 0:
            raise ValueError(
                "explorer: need delay_ms > 0, stall_rate_per_s >= 0 and threshold_ms >= 0, got "
                f"{self.delay_ms}, {self.stall_rate_per_s}, {self.threshold_ms}"
            )


@dataclass(frozen=True)
class ExplorerView:
    """One recomputation: the settings, the simulated run and its metrics table."""

    settings: ExplorerSettings
    result: SimResult

    def table(self) -> pd.DataFrame:
        row = self.result.metrics.as_row()
        values = {label: row[name] for name, label in TABLE_METRICS.items()}
        return pd.DataFrame({"value": values})


@lru_cache(maxsize=16)
def prepared_trace(name: str) -> PreparedTrace:
    """A shipped trace, read and prepared once per process (re-reading would dominate a redraw)."""
    return prepare(read(shipped(name)), name)


def explore(settings: ExplorerSettings) -> ExplorerView:
    """Simulate the settings: the computation behind every redraw."""
    settings.check()
    result = simulate(
        prepared_trace(settings.trace),
        settings.strategy,
        settings.threshold_ms,
        link=settings.link,
        playout=settings.playout,
        seed=settings.seed,
        link_params=settings.link_params(),
    )
    return ExplorerView(settings, result)


def render(view: ExplorerView, ax: Axes | None = None) -> Axes:
    """The run's packet timeline, titled with what to look for."""
    m = view.result.metrics
    s = view.settings
    title = (
        f"{s.trace}: {s.strategy} {s.threshold_ms:.0f} ms over {s.link}, {s.playout} playout: "
        f"{m.concealment_events} underruns, {m.concealed_ms:.0f} ms of silence (red)"
    )
    return packet_timeline(view.result.schedule, ax=ax, title=title)


class Explorer:
    """ipywidgets controls over ``explore``/``render``; ``update()`` redraws once."""

    def __init__(self, settings: ExplorerSettings | None = None) -> None:
        import ipywidgets as widgets

        from labkit.traces import shipped as shipped_paths

        self.settings = settings or ExplorerSettings()
        names = sorted(path.name.split(".")[0] for path in shipped_paths())
        s = self.settings
        self.controls: dict[str, Any] = {
            "trace": widgets.Dropdown(options=names, value=s.trace, description="trace"),
            "strategy": widgets.Dropdown(
                options=STRATEGY_NAMES, value=s.strategy, description="strategy"
            ),
            "threshold_ms": widgets.FloatSlider(
                value=s.threshold_ms, min=0, max=300, step=10, description="threshold/lead ms"
            ),
            "link": widgets.Dropdown(options=EXPLORER_LINKS, value=s.link, description="link"),
            "delay_ms": widgets.FloatSlider(
                value=s.delay_ms, min=5, max=200, step=5, description="link delay ms"
            ),
            "stall_rate_per_s": widgets.FloatSlider(
                value=s.stall_rate_per_s, min=0, max=2, step=0.05, description="stalls /s"
            ),
            "playout": widgets.Dropdown(
                options=PLAYOUT_NAMES, value=s.playout, description="playout"
            ),
        }
        self.output = widgets.Output()
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self.box = widgets.VBox(
            [widgets.HBox(list(self.controls.values())[:4]),
             widgets.HBox(list(self.controls.values())[4:]), self.output]
        )  # fmt: skip
        self.view: ExplorerView | None = None

    def _changed(self, _change: Any) -> None:
        values = {name: control.value for name, control in self.controls.items()}
        self.settings = replace(self.settings, **values)
        self.update()

    def update(self) -> ExplorerView:
        """Recompute and redraw into the output area."""
        import matplotlib.pyplot as plt
        from IPython import display as ipython_display

        show: Any = ipython_display.display  # untyped in IPython
        self.view = explore(self.settings)
        self.output.clear_output(wait=True)
        with self.output:
            figure, ax = plt.subplots(figsize=(10, 4), layout="constrained")
            render(self.view, ax=ax)
            show(figure)
            plt.close(figure)
            show(self.view.table())
            show(self.view.result.audio.play())
        return self.view
