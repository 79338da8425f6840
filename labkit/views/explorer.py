"""The explorer's computation: pick a trace, strategy, link and playout; see and hear the call.

``explore(settings)`` is a plain function (the notebook asserts on it, nbval runs it), cached per
settings: moving a control back to where it was costs nothing. It returns an ``ExplorerView``:
the simulated run, the metrics table (rounded, with units), the timeline's data (what played,
the gaps the carrier conceals, the padding the playout model inserted, each answer's onset) and
notes naming the controls that have no effect on these settings. Drawing is
labkit/views/explorer_figure.py; the widgets (JupyterLab and ``labkit explore``) are
labkit/views/explorer_app.py. See notebooks/03_explorer.ipynb.
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from labkit.audio import SAMPLE_RATE_HZ
from labkit.outbound import STRATEGY_NAMES, threshold_meaning
from labkit.sim import PLAYOUT_NAMES, SimResult, prepare, simulate
from labkit.sim.links import DEFAULT_LINK, LINK_NAMES, STRESS_LINKS, link_parameters
from labkit.sim.metrics import CONCEALMENT_EPS_MS, ONSET_MS
from labkit.sim.playout import DEFAULT_PLAYOUT, TWILIO_HYPOTHESES
from labkit.sim.render import mos_lqo
from labkit.sim.simulator import PreparedTrace
from labkit.sim.sweep_traces import load_all, one_trace, trace_sources
from labkit.traces import shipped

FloatArray = npt.NDArray[np.float64]
BYTES_PER_MS = 8
DEFAULT_CONCEAL = "plc"
CONCEAL_LABELS = {"plc": "concealed (G.711 Appendix I)", "silence": "silence"}
EXPLORER_STRATEGIES = (*STRATEGY_NAMES, "original_report")
ORIGINAL_REPORT_VARIANTS = ("final", "first")
# The strategy control's choices: (label, (strategy, variant))
STRATEGY_CHOICES: list[tuple[str, tuple[str, str]]] = [
    *((name, (name, "final")) for name in STRATEGY_NAMES),
    ("original report (final code)", ("original_report", "final")),
    ("original report (first commit)", ("original_report", "first")),
]
RESULTS_CACHED = 64  # runs kept per process: a long_conversation run holds ~1 MB
COUNTED = ("gaps", "messages")  # units of counts: "1 gap", "2 gaps"
VIEW_MARGIN_MS = 300.0  # around an answer shown alone
GAP_VIEW_HALF_MS = 1500.0  # either side of the gap a "longest gap" view centres on


@dataclass(frozen=True)
class Control:
    """How a numeric control reads and moves: a full label with its unit, a range, a step."""

    label: str
    low: float
    high: float
    step: float


THRESHOLD = Control("threshold (ms)", 0, 1000, 10)
# The link parameters the explorer has controls for (labkit.sim.links.link_parameters names).
LINK_CONTROLS: dict[str, Control] = {
    "mean_ms": Control("path delay, mean (ms)", 5, 300, 5),
    "p99_ms": Control("path delay, 99th percentile (ms)", 10, 1000, 10),
    "tau_ms": Control("path delay, correlation time (ms)", 50, 5000, 50),
    # the constant and stalls links' delay: named apart from the varying delay's mean above
    "delay_ms": Control("fixed path delay (ms)", 0, 300, 5),
    "rate_per_s": Control("path freezes (per s)", 0, 2, 0.05),
    "stall_rate_per_s": Control("sender stalls (per s)", 0, 5, 0.1),
    "stall_ms": Control("sender stall, mean length (ms)", 0, 200, 5),
}
LINK_MEANS = {
    "tcp": "one TCP connection: shared path delay, per-message costs, sender stalls",
    "correlated": "the shared path delay alone",
    "ideal": "no delay at all",
    "constant": "a constant delay",
    "jitter": "stress model: every message draws its own delay",
    "stalls": "constant delay and rare path freezes",
}
PLAYOUT_MEANS = {
    "fifo": "messages played back to back, as Twilio documents",
    "frame_clock": "a 20 ms clock; a frame the queue cannot fill is padded with silence",
    "frame_clock_skip": "a 20 ms clock; a partial frame waits a tick (concealed) for its bytes",
    "prefetch": "at the start and after running dry, waits for 60 ms of audio or 120 ms",
    "pad_every_message": "every message padded to whole 20 ms frames (the extreme)",
    "fixed": "each answer on a fixed schedule from its first arrival: a receiver policy for "
             "comparison, not Twilio",
}


@dataclass(frozen=True)
class ExplorerSettings:
    """Everything the explorer's controls set (hashable: runs are cached per settings).

    ``link_params`` holds the link parameters moved away from the link's defaults
    (``labkit.sim.links.link_parameters``); ``params()`` gives them all."""

    trace: str = "tiny_deltas"
    strategy: str = "forward"
    threshold_ms: float = 50.0
    variant: str = "final"  # original_report only
    link: str = DEFAULT_LINK
    link_params: tuple[tuple[str, float], ...] = ()
    playout: str = DEFAULT_PLAYOUT
    seed: int = 0

    def params(self) -> dict[str, float]:
        """Every parameter of the link, defaults overridden by ``link_params``."""
        return {**link_parameters(self.link), **dict(self.link_params)}

    def with_params(self, **values: float) -> ExplorerSettings:
        """These settings with some link parameters set (the others kept)."""
        merged = {**dict(self.link_params), **{k: float(v) for k, v in values.items()}}
        return replace(self, link_params=tuple(sorted(merged.items())))

    def with_link(self, link: str) -> ExplorerSettings:
        """These settings on another link, its parameters at their defaults."""
        return replace(self, link=link, link_params=())

    def strategy_options(self) -> dict[str, Any]:
        return {"variant": self.variant} if self.strategy == "original_report" else {}

    def check(self) -> None:
        """Reject settings the controls could not produce, naming the bad one."""
        if self.strategy not in EXPLORER_STRATEGIES:
            raise ValueError(f"explorer: unknown strategy {self.strategy!r}; "
                             f"choose one of {', '.join(EXPLORER_STRATEGIES)}")  # fmt: skip
        if self.variant not in ORIGINAL_REPORT_VARIANTS:
            raise ValueError(f"explorer: variant must be one of {ORIGINAL_REPORT_VARIANTS}, "
                             f"got {self.variant!r}")  # fmt: skip
        if self.link not in LINK_NAMES:
            raise ValueError(f"explorer: link must be one of {LINK_NAMES}, got {self.link!r}")
        if self.playout not in PLAYOUT_NAMES:
            raise ValueError(f"explorer: playout must be one of {PLAYOUT_NAMES}, "
                             f"got {self.playout!r}")  # fmt: skip
        if not (math.isfinite(self.threshold_ms) and self.threshold_ms >= 0):
            raise ValueError(f"explorer: threshold_ms must be >= 0, got {self.threshold_ms}")
        known = link_parameters(self.link)
        for name, value in self.link_params:
            if name not in known:
                raise ValueError(f"explorer: link {self.link!r} takes no parameter {name!r}; "
                                 f"it takes {', '.join(known)}")  # fmt: skip
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"explorer: link parameter {name} must be >= 0, got {value}")


def notes(settings: ExplorerSettings) -> list[str]:
    """What a person should know about these settings: controls that have no effect on them,
    and models that are not what they might seem."""
    said = []
    if threshold_meaning(settings.strategy) is None:
        said.append(f"{settings.strategy} sends each delta as it comes: the threshold has no "
                    "effect.")  # fmt: skip
    ignored = [f"\u201c{control.label}\u201d" for name, control in LINK_CONTROLS.items()
               if name not in link_parameters(settings.link)]  # fmt: skip
    if ignored:
        said.append(f"the {settings.link} link ({LINK_MEANS[settings.link]}) has no "
                    f"{'; '.join(ignored)}: those sliders have no effect.")  # fmt: skip
    if settings.link in STRESS_LINKS:
        said.append(f"{settings.link} is a stress model, not one TCP connection (whose messages "
                    "share the path's delay): a verdict that holds only here must say so.")
    if settings.playout not in TWILIO_HYPOTHESES:
        said.append(f"playout {settings.playout} is a receiver policy for comparison, not a "
                    "hypothesis about Twilio.")  # fmt: skip
    return said


# Settings that show gaps from a run that has none, each one change away (on every shipped trace
# frame_clock_skip has gaps; jitter on most; realtime_jitter has gaps on every link and playout)
NO_GAP_TRIES = (("link", "jitter"), ("playout", "frame_clock_skip"), ("trace", "realtime_jitter"))


def no_gap_hint(view: ExplorerView) -> str | None:
    """What to try when the run has no gap (a first page shows one: nothing seems to happen),
    naming only changes from the current settings; None when it has gaps."""
    if view.result.metrics.concealment_events:
        return None
    tries = [f"{control} {value}" for control, value in NO_GAP_TRIES
             if getattr(view.settings, control) != value]  # fmt: skip
    said = "no gap in this run: the caller hears every answer whole."
    return f"{said} To see gaps, try {', or '.join(tries)}." if tries else said


@dataclass(frozen=True)
class Timeline:
    """What the timeline draws, in ms of wall time (numpy arrays, one row per thing)."""

    sent_ms: FloatArray  # per played media message
    arrived_ms: FloatArray
    play_start_ms: FloatArray
    play_end_ms: FloatArray
    media_ms: FloatArray  # audio handed to the sender before the message (ms of media)
    audio_ms: FloatArray  # the message's audio (ms)
    heard: FloatArray  # (n, 2) start, end of audio the caller heard
    fills: FloatArray  # (n, 2) silence the playout model inserted (padding)
    gaps: FloatArray  # (n, 2) silences inside an answer with nothing played: concealed
    gap_at_onset: npt.NDArray[np.bool_]  # per gap: within the first ONSET_MS of its answer
    answers: FloatArray  # (n, 3) each answer's first play, end of its onset, last play
    end_ms: float = 0.0

    @cached_property
    def silences(self) -> FloatArray:
        """(n, 2) every silence inside an answer, as the metrics count gaps (one between two
        heard pieces): the gaps the carrier conceals and the padding the playout inserted."""
        return _uncovered(self.heard, self.answers)

    @cached_property
    def silence_padded_ms(self) -> FloatArray:
        """Per silence: how much of it is padding the playout model inserted (ms)."""
        return _overlap_ms(self.silences, self.fills)

    @cached_property
    def silence_is_padding(self) -> npt.NDArray[np.bool_]:
        """Per silence: all of it padding (grey in the figure), none concealed (red)."""
        lengths = self.silences[:, 1] - self.silences[:, 0]
        padding: npt.NDArray[np.bool_] = self.silence_padded_ms >= lengths - CONCEALMENT_EPS_MS
        return padding

    def windows(self) -> dict[str, tuple[str, tuple[float, float]]]:
        """Views worth zooming to: key -> (a label a person reads, (from, to) in ms). Keys stay
        the same across settings ("whole", "gap", "onset_gap", "answer 3") where labels do not:
        the whole call, the longest gap, the longest at a word start, each answer. A gap is
        any silence the title counts: concealed by the carrier or padded by the playout (the
        label says which)."""
        end = max(self.end_ms, 1.0)
        views = {"whole": ("whole call", (0.0, end))}
        silences = self.silences
        lengths = silences[:, 1] - silences[:, 0]
        every = np.ones(len(lengths), dtype=bool)
        at_onset = _at_onset(silences, self.answers)
        for key, pool, what in (("gap", every, "longest gap"),
                                ("onset_gap", at_onset, "longest gap at a word start")):
            if pool.any():
                worst = int(np.flatnonzero(pool)[np.argmax(lengths[pool])])
                middle = float(silences[worst].mean())
                kind = _silence_kind(float(self.silence_padded_ms[worst]), float(lengths[worst]))
                label = (f"{what}: {_ms_text(float(lengths[worst]))} ms at "
                         f"{middle / 1000:.1f} s ({kind})")  # fmt: skip
                views[key] = (label, (max(0.0, middle - GAP_VIEW_HALF_MS),
                                      middle + GAP_VIEW_HALF_MS))  # fmt: skip
        for number, (first, _, last) in enumerate(self.answers.tolist(), start=1):
            label = f"answer {number}: {first / 1000:.1f}-{last / 1000:.1f} s"
            views[f"answer {number}"] = (label, (max(0.0, first - VIEW_MARGIN_MS),
                                                 last + VIEW_MARGIN_MS))  # fmt: skip
        return views


def _ms_text(ms: float) -> str:
    """A silence's length in whole ms; one shorter than half a ms is "<1", not "0"."""
    return "<1" if 0 < ms < 0.5 else f"{ms:.0f}"


def _silence_kind(padded_ms: float, length_ms: float) -> str:
    """What a silence is, in the words of the figure's legend: red spans, grey ones, or both."""
    if padded_ms <= CONCEALMENT_EPS_MS:
        return "concealed"
    if padded_ms >= length_ms - CONCEALMENT_EPS_MS:
        return "padding the playout inserted"
    return "partly padding, partly concealed"


def _overlap_ms(spans: FloatArray, covers: FloatArray) -> FloatArray:
    """Per span of ``spans``, how much of it the union of ``covers`` covers (ms): the covered
    length up to each end minus that up to each start (a search, not spans x covers: ~4,900
    of each on a long call)."""
    union = merged(covers)
    if len(spans) == 0 or len(union) == 0:
        return np.zeros(len(spans))
    lengths = union[:, 1] - union[:, 0]
    before = np.r_[0.0, np.cumsum(lengths)[:-1]]  # covered before each interval of the union

    def covered_until(at: FloatArray) -> FloatArray:
        which = np.maximum(np.searchsorted(union[:, 0], at, side="right") - 1, 0)
        inside = np.clip(at - union[which, 0], 0, lengths[which])
        until: FloatArray = before[which] + inside
        return until

    overlap: FloatArray = covered_until(spans[:, 1]) - covered_until(spans[:, 0])
    return overlap


def merged(intervals: FloatArray) -> FloatArray:
    """The union of ``intervals`` (ms) as disjoint intervals in time order: touching or
    overlapping ones joined, any gap between them kept, however short."""
    if len(intervals) < 2:
        return intervals
    ordered = intervals[np.argsort(intervals[:, 0], kind="stable")]
    ends = np.maximum.accumulate(ordered[:, 1])
    starts_run = np.r_[True, ordered[1:, 0] > ends[:-1]]
    first = np.flatnonzero(starts_run)
    last = np.r_[first[1:] - 1, len(ordered) - 1]
    joined: FloatArray = np.column_stack([ordered[first, 0], ends[last]])
    return joined


@dataclass(frozen=True)
class Readout:
    """One line of the metrics table: a label, a rounded value and its unit."""

    label: str
    value: float
    unit: str

    def text(self) -> str:
        if math.isnan(self.value):
            return "-"
        decimals = _decimals(self.unit)
        one = self.value == 1 and self.unit in COUNTED
        unit = self.unit.removesuffix("s") if one else self.unit
        return f"{self.value:,.{decimals}f} {unit}".rstrip()


@dataclass(frozen=True)
class ExplorerView:
    """One recomputation: the settings, the simulated run, and what the explorer shows of it."""

    settings: ExplorerSettings
    result: SimResult
    notes: list[str] = field(default_factory=list)
    _mos: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def timeline(self) -> Timeline:
        return timeline(self.result)

    def readouts(self) -> list[Readout]:
        """The metrics a person reads, rounded, with units (``table`` as a DataFrame)."""
        m = self.result.metrics
        fills = self.timeline.fills
        padding_ms = float((fills[:, 1] - fills[:, 0]).sum()) if len(fills) else 0.0
        return [
            Readout("gaps inside answers", m.concealment_events, "gaps"),
            Readout("silence in gaps", m.concealed_ms, "ms"),
            Readout(f"gaps at word starts (first {ONSET_MS:.0f} ms of an answer)",
                    m.onset_concealment_events, "gaps"),
            Readout("silence in gaps at word starts", m.onset_concealed_ms, "ms"),
            Readout("gaps of 150 ms or more (NetEQ interruptions)", m.interruption_count, "gaps"),
            Readout("padding the playout model inserted (part of the silence)", padding_ms, "ms"),
            Readout("media messages", m.media_messages, "messages"),
            Readout("messages per second of audio", m.messages_per_audio_s, "per s of audio"),
            Readout("time to first audio, mean over answers", m.mean_time_to_first_audio_ms,
                    "ms"),
            Readout("lag behind real time, mean over bytes", m.mean_lag_ms, "ms"),
            Readout("wait in Twilio's queue, mean over bytes", m.mean_added_latency_ms, "ms"),
            Readout("oracle D*: the least pre-roll with no gap", m.oracle_min_delay_ms, "ms"),
        ]

    def table(self) -> pd.DataFrame:
        """The readouts as a table: rounded values, units in their own column."""
        rows = self.readouts()
        return pd.DataFrame(
            {"value": np.array([_rounded(r) for r in rows], dtype=object),  # ints stay ints
             "unit": [r.unit for r in rows]},
            index=pd.Index([r.label for r in rows], name="metric"),
        )

    def title(self) -> str:
        s, m = self.settings, self.result.metrics
        threshold = "" if threshold_meaning(s.strategy) is None else (
            f" {s.threshold_ms:.0f} ms")  # fmt: skip
        trace = prepared_trace(s.trace).name
        if s.trace not in trace_names():  # a file of yours may share a shipped trace's name
            trace += " (yours)"
        strategy = dict((choice, label) for label, choice in STRATEGY_CHOICES).get(
            (s.strategy, s.variant), s.strategy)  # fmt: skip
        gaps = m.concealment_events
        # a gap shorter than half a millisecond is still a gap: not "1 gap, 0 ms"
        silence = _ms_text(m.concealed_ms)
        return (f"{trace}: {strategy}{threshold} over {s.link}, {s.playout} playout: "
                f"{gaps} gap{'' if gaps == 1 else 's'}, {silence} ms of silence "
                f"({m.onset_concealment_events} at word starts)")  # fmt: skip

    def wav(self, conceal: str = DEFAULT_CONCEAL) -> bytes:
        """What the caller hears, as a 16-bit WAV file (for an audio player): gaps concealed
        by G.711 Appendix I (``"plc"``, as a phone line does) or left ``"silence"``."""
        audio = self.result.render(conceal).audio
        return wav_bytes(audio.samples, audio.rate_hz)

    def mos(self, conceal: str = DEFAULT_CONCEAL) -> float:
        """P.862 MOS-LQO of what the caller hears (labkit.sim.render.mos_lqo; about 1 s for the
        98 s trace, so the explorer computes it on request), kept per concealment."""
        if conceal not in self._mos:
            self._mos[conceal] = mos_lqo(self.result, conceal)
        return self._mos[conceal]


def _decimals(unit: str) -> int:
    """Rates and MOS to 0.1; counts and ms whole."""
    return 1 if unit in ("per s of audio", "MOS") else 0


def _rounded(readout: Readout) -> float | int:
    """A readout as its text shows it: a count or whole ms an int (a table shows "42", not
    "42.0"), rates and MOS to 0.1, NaN (no score yet) as it is."""
    value = float(readout.value)
    decimals = _decimals(readout.unit)
    if decimals or math.isnan(value):
        return round(value, decimals)
    return round(value)


def wav_bytes(samples: npt.NDArray[np.int16], rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """16-bit mono WAV bytes (one silent sample for empty audio: a player refuses none)."""
    data = samples if len(samples) else np.zeros(1, dtype=np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(np.asarray(data, dtype="<i2").tobytes())
    return buffer.getvalue()


@lru_cache(maxsize=16)
def prepared_trace(spec: str) -> PreparedTrace:
    """A trace (a shipped name or a file, as the sweeps read them), read and prepared once per
    process (re-reading would dominate a redraw)."""
    source = one_trace(spec)
    return prepare(source.load(), source.name)


def trace_names() -> list[str]:
    """The shipped traces, by name."""
    return sorted(path.name.split(".")[0] for path in shipped())


def trace_choices(traces: str | Path | Sequence[str | Path] = (), *,
                  read_first: bool = True) -> list[tuple[str, str]]:  # fmt: skip
    """The trace menu's (label, spec): the shipped traces, then ``your_traces(traces)``."""
    return [(name, name) for name in trace_names()] + your_traces(traces, read_first=read_first)


def your_traces(traces: str | Path | Sequence[str | Path], *,
                read_first: bool = True) -> list[tuple[str, str]]:  # fmt: skip
    """(label, absolute path) of your trace files, and of the traces in your directories
    (``labkit serve --record DIR``, ``labkit import``), labelled by name. With ``read_first``
    each is read once to check it (a ValueError names every file that is not a trace, with its
    line and field): 10-50 ms a trace, skipped where they were read already."""
    sources = trace_sources(traces)
    if read_first:
        for _ in load_all(sources):  # as a sweep reads them: each bad one named
            pass
    return [(f"{source.name} (yours)", str(source.path.resolve()))
            for source in sources if source.path is not None]  # fmt: skip


@lru_cache(maxsize=RESULTS_CACHED)
def explore(settings: ExplorerSettings) -> ExplorerView:
    """Simulate the settings: the computation behind every redraw (cached per settings)."""
    settings.check()
    result = simulate(
        prepared_trace(settings.trace),
        settings.strategy,
        settings.threshold_ms,
        link=settings.link,
        playout=settings.playout,
        seed=settings.seed,
        link_params=settings.params(),
        **settings.strategy_options(),
    )
    return ExplorerView(settings, result, notes(settings))


def other_strategies(settings: ExplorerSettings) -> list[ExplorerSettings]:
    """The settings under each other choice of strategy: what a person comparing strategies
    asks for next (the explorer computes them while the controls rest)."""
    return [replace(settings, strategy=strategy, variant=variant)
            for _, (strategy, variant) in STRATEGY_CHOICES
            if (strategy, variant) != (settings.strategy, settings.variant)]  # fmt: skip


def timeline(result: SimResult) -> Timeline:
    """The timeline's data from a run: its schedule, what played and the padding inserted.

    Silences are read off the playout model's own record: inside an answer (from its first
    played byte to its last), time covered neither by heard audio (``segments``) nor by padding
    (``fills``) is a gap the carrier conceals. Added to the padding inside answers, that is the
    silence ``Metrics.concealed_ms`` counts (the tests hold them equal)."""
    media = _played_media(result.columns)
    heard = _intervals([(start, end) for start, end, _ in result.segments])
    fills = _intervals(result.fills)
    answers = _answers(media)
    gaps = _uncovered(np.concatenate([heard, fills]), answers)
    at_onset = _at_onset(gaps, answers)
    end = max(float(np.max(heard[:, 1])) if len(heard) else 0.0,
              float(media["sent_ms"].max()) if len(media["sent_ms"]) else 0.0)  # fmt: skip
    return Timeline(media["sent_ms"], media["arrived_ms"], media["play_start_ms"],
                    media["play_end_ms"], media["media_ms"], media["audio_ms"], heard, fills,
                    gaps, at_onset, answers, end)  # fmt: skip


def _played_media(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Media rows that played, in send order, with each one's media position (ms)."""
    is_media = np.asarray(columns["kind"], dtype=object) == "media"
    size_ms = np.asarray(columns["size"], dtype=np.float64)[is_media] / BYTES_PER_MS
    rows = {name: np.asarray(columns[name], dtype=np.float64)[is_media]
            for name in ("sent_ms", "arrived_ms", "play_start_ms", "play_end_ms",
                         "offset")}  # fmt: skip
    items = np.asarray(columns["item_id"], dtype=object)[is_media]
    content = np.asarray(columns["content_index"], dtype=np.int64)[is_media]
    played = np.isfinite(rows["play_start_ms"]) & np.isfinite(rows["play_end_ms"])
    keys = np.array([f"{i}\x00{c}" for i, c in zip(items, content, strict=True)], dtype=object)
    chosen = {name: values[played] for name, values in rows.items()}
    chosen["media_ms"] = (np.cumsum(size_ms) - size_ms)[played]
    chosen["audio_ms"] = size_ms[played]
    chosen["key"] = keys[played]
    return chosen


def _intervals(pairs: Any) -> FloatArray:
    array = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return array[np.argsort(array[:, 0], kind="stable")]


def _answers(media: dict[str, Any]) -> FloatArray:
    """Per answer (item), sorted by first play: first play, end of its onset, last play."""
    keys = media["key"]
    if len(keys) == 0:
        return np.zeros((0, 3))
    _, code = np.unique(keys, return_inverse=True)
    count = int(np.max(code)) + 1
    first = np.full(count, np.inf)
    last = np.full(count, -np.inf)
    np.minimum.at(first, code, media["play_start_ms"])
    np.maximum.at(last, code, media["play_end_ms"])
    # the onset ends where the first byte at or past ONSET_MS of the answer's audio plays
    past = media["offset"] / BYTES_PER_MS >= ONSET_MS
    onset_end = last.copy()
    np.minimum.at(onset_end, code[past], media["play_start_ms"][past])
    answers = np.column_stack([first, onset_end, last])
    return answers[np.argsort(first, kind="stable")]


def _uncovered(covered: FloatArray, answers: FloatArray) -> FloatArray:
    """Spans inside an answer that no interval of ``covered`` covers."""
    if len(covered) == 0 or len(answers) == 0:
        return np.zeros((0, 2))
    covered = covered[np.argsort(covered[:, 0], kind="stable")]
    reach = np.maximum.accumulate(covered[:, 1])
    starts, ends = reach[:-1], covered[1:, 0]
    open_ = ends - starts > CONCEALMENT_EPS_MS
    spans = np.column_stack([starts[open_], ends[open_]])
    middle = spans.mean(axis=1)
    which = np.searchsorted(answers[:, 0], middle, side="right") - 1
    inside = (which >= 0) & (middle < answers[np.maximum(which, 0), 2])
    uncovered: FloatArray = spans[inside]
    return uncovered


def _at_onset(gaps: FloatArray, answers: FloatArray) -> npt.NDArray[np.bool_]:
    if len(gaps) == 0:
        return np.zeros(0, dtype=bool)
    which = np.searchsorted(answers[:, 0], gaps.mean(axis=1), side="right") - 1
    onset: npt.NDArray[np.bool_] = gaps[:, 1] < answers[which, 1] - CONCEALMENT_EPS_MS
    return onset
