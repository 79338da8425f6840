"""TwilioPeer: a WebSocket client that behaves like Twilio Media Streams, for loopback calls.

It dials the server's ``/media-stream`` exactly as Twilio does (DOMAIN.md section 2): ``connected``,
``start`` (with ``customParameters``), then one 20 ms caller frame per 20 ms on an absolute clock
(silence, or speech placed at chosen times). What the server sends goes through the simulator's own
playout model (``labkit.sim.playout``) in real time: a mark is echoed when the audio before it has
played (at once when nothing is queued), a ``clear`` drops the queue and echoes every pending mark.
Every arrival is recorded with its time, so the metrics of a live call are measured with the same
code as the simulator's. See notebooks/04_live_call.ipynb and notebooks/05_barge_in_and_marks.ipynb.

Time: the peer's clock is media time, ``(monotonic - start) * 1000 * speed`` ms, so a call replayed
``speed`` times faster than real time is recorded on the trace's own time base.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from labkit.live.settings import check_replay_speed
from labkit.sim.playout import Playout, Segment, make_playout
from labkit.twilio_messages import (
    ClearMsg,
    OutboundMarkMsg,
    OutboundMediaMsg,
    TwilioMessageError,
    connected_json,
    inbound_media_json,
    mark_echo_json,
    parse_to_twilio,
    start_json,
    stop_json,
)

if TYPE_CHECKING:
    import pandas as pd

    from labkit.traces import Trace

log = logging.getLogger(__name__)

BYTES_PER_MS = 8
FRAME_MS = 20
FRAME_BYTES = FRAME_MS * BYTES_PER_MS
SILENCE_BYTE = 0xFF
MS_PER_S = 1000.0
PINGS = 5
PING_INTERVAL_S = 0.02
PING_TIMEOUT_S = 1.0
AUDIO_DIR = Path(__file__).resolve().parents[2] / "data" / "audio"
SCHEDULE_COLUMNS = (
    "kind", "item_id", "content_index", "offset", "size", "generation", "sent_ms", "arrived_ms",
    "name",
)  # fmt: skip


def speech_ulaw(name: str, audio_dir: Path = AUDIO_DIR) -> bytes:
    """One shipped phrase (data/audio/<name>.ulaw), mu-law 8 kHz."""
    path = audio_dir / f"{name}.ulaw"
    if not path.is_file():
        known = sorted(p.stem for p in audio_dir.glob("*.ulaw"))
        raise FileNotFoundError(f"no speech {name!r} in {audio_dir}; known: {', '.join(known)}")
    return path.read_bytes()


@dataclass(frozen=True, slots=True)
class CallerScript:
    """What the caller says: ``(start_ms, mu-law bytes)`` on the media timeline, else silence."""

    utterances: tuple[tuple[float, bytes], ...] = ()

    def frame(self, index: int) -> bytes:
        """The 160 bytes of frame ``index`` (media time ``index * 20`` ms)."""
        start = index * FRAME_BYTES
        frame = bytearray([SILENCE_BYTE]) * FRAME_BYTES
        for at_ms, speech in self.utterances:
            begin = round(at_ms * BYTES_PER_MS)
            lo, hi = max(start, begin), min(start + FRAME_BYTES, begin + len(speech))
            if lo < hi:
                frame[lo - start : hi - start] = speech[lo - begin : hi - begin]
        return bytes(frame)


@dataclass(frozen=True, slots=True)
class Arrival:
    """One message the server sent, as the peer received it (``arrived_ms`` on the peer's clock)."""

    kind: str  # "media" | "mark" | "clear"
    arrived_ms: float
    size: int = 0
    payload: bytes = b""
    mark_name: str | None = None


@dataclass(frozen=True, slots=True)
class Echo:
    """A mark the peer echoed: ``cleared`` when a ``clear`` echoed it, not its audio playing."""

    name: str
    echoed_ms: float
    cleared: bool


ItemKey = tuple[str, int]
ItemLengths = Sequence[tuple[ItemKey, int]]


@dataclass
class PeerRecording:
    """Everything observed during one call."""

    speed: float
    arrivals: list[Arrival] = field(default_factory=list)
    echoes: list[Echo] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    frames_sent: int = 0
    ping_rtt_ms: list[float] = field(default_factory=list)  # real ms, WebSocket ping/pong
    closed_by: str = ""  # "peer" (hangup, stop sent) or "server"
    playout: Playout | None = None

    @property
    def one_way_delay_ms(self) -> float:
        """Half the smallest ping round trip, in media ms (NaN if no pong came back)."""
        if not self.ping_rtt_ms:
            return math.nan
        return min(self.ping_rtt_ms) / 2 * self.speed

    @property
    def media_bytes(self) -> int:
        return sum(a.size for a in self.arrivals if a.kind == "media")

    def received_audio(self) -> bytes:
        return b"".join(a.payload for a in self.arrivals if a.kind == "media")

    def heard_audio(self) -> bytes:
        """What the caller heard, silence filling the gaps between played segments."""
        out = bytearray()
        origin = self.segments[0][0] if self.segments else 0.0
        for start_ms, _, payload in self.segments:
            pad = round((start_ms - origin) * BYTES_PER_MS) - len(out)
            out += bytes([SILENCE_BYTE]) * max(pad, 0) + payload
        return bytes(out)

    def schedule(self, items: ItemLengths | None = None) -> pd.DataFrame:
        """One row per media, mark and clear received, in arrival order, in the columns
        ``labkit.sim.metrics.measure`` reads. ``items`` (each item's key and byte length, in the
        order the model spoke them, e.g. ``trace_items(trace)``) names the items; without it each
        generation counts as one item ``("g<n>", 0)``."""
        import pandas as pd

        rows = attribute_arrivals(self.arrivals, items)
        return pd.DataFrame(rows, columns=list(SCHEDULE_COLUMNS))


def trace_items(trace: Trace) -> list[tuple[ItemKey, int]]:
    """The trace's items in speaking order with their audio length in bytes."""
    return [(key, len(trace.item_audio(key))) for key in trace.items]


def attribute_arrivals(
    arrivals: Sequence[Arrival], items: ItemLengths | None
) -> list[dict[str, Any]]:
    """Which item, offset and generation each message belongs to.

    Mark names carry no item (``labkit.marks`` names them ``m<seq>.g<generation>``) and Twilio's
    side never learns item ids, so the items come from what the peer knows: the model speaks items
    one after another and every media message holds bytes of one item, in order. A media continues
    the current item until that item's length is reached; a ``clear`` abandons the current item
    (the strategy dropped its unsent tail). Marks take the position of the media before them.
    """
    cursor = _ItemCursor(items)
    rows: list[dict[str, Any]] = []
    for arrival in arrivals:
        if arrival.kind == "media":
            rows.append(cursor.place(arrival))
        elif arrival.kind == "mark":
            rows.append(cursor.mark(arrival))
        elif arrival.kind == "clear":
            rows.append(cursor.clear(arrival))
    return rows


class _ItemCursor:
    def __init__(self, items: ItemLengths | None) -> None:
        self.items = list(items) if items is not None else None
        self.index = 0
        self.offset = 0
        self.generation = 0

    def _key(self) -> ItemKey:
        if self.items is None:
            return (f"g{self.generation}", 0)
        if self.index < len(self.items):
            return self.items[self.index][0]
        return ("unexpected", 0)  # more audio than the items listed

    def _item_complete(self) -> bool:
        if self.items is None or self.index >= len(self.items):
            return False
        return self.offset >= self.items[self.index][1]

    def _row(self, kind: str, arrival: Arrival, size: int) -> dict[str, Any]:
        item_id, content_index = self._key()
        return {
            "kind": kind,
            "item_id": item_id,
            "content_index": content_index,
            "offset": self.offset,
            "size": size,
            "generation": self.generation,
            "sent_ms": math.nan,
            "arrived_ms": arrival.arrived_ms,
            "name": arrival.mark_name or "",
        }

    def place(self, arrival: Arrival) -> dict[str, Any]:
        while self._item_complete():
            self.index += 1
            self.offset = 0
        row = self._row("media", arrival, arrival.size)
        self.offset += arrival.size
        return row

    def mark(self, arrival: Arrival) -> dict[str, Any]:
        return self._row("mark", arrival, 0)

    def clear(self, arrival: Arrival) -> dict[str, Any]:
        row = self._row("clear", arrival, 0)
        self.generation += 1
        if self.items is None:
            self.offset = 0
        elif self.offset > 0:
            self.index += 1
            self.offset = 0
        return row


class TwilioPeer:
    """Dial ``url`` like Twilio, stream caller frames, play and record what comes back.

    ``await peer.run()`` returns the ``PeerRecording`` once the call ends: ``hangup()`` was called,
    the server closed the socket, or (``idle_hangup_ms``) nothing was received or playing for that
    long after ``min_call_ms``. Times are media ms (real ms times ``speed``).
    """

    def __init__(
        self,
        url: str,
        *,
        custom_parameters: Mapping[str, str] | None = None,
        caller: CallerScript | None = None,
        playout: str = "fifo",
        playout_params: Mapping[str, float] | None = None,
        speed: float = 1.0,
        idle_hangup_ms: float | None = None,
        min_call_ms: float = 0.0,
        headers: Mapping[str, str] | None = None,
        stream_sid: str = "MZ00000000000000000000000000000001",
        call_sid: str = "CA00000000000000000000000000000001",
        account_sid: str = "ACemulated00000000000000000000001",
        clock: Callable[[], float] = time.monotonic,
        offer_deflate: bool = False,
    ) -> None:
        check_replay_speed("TwilioPeer: speed", speed)
        self.url = url
        self.custom_parameters = dict(custom_parameters or {})
        self.caller = caller or CallerScript()
        self.speed = speed
        self.idle_hangup_ms = idle_hangup_ms
        self.min_call_ms = min_call_ms
        # Whether Twilio offers permessage-deflate is documented nowhere; the peer does not, unless
        # asked (what a server pays when a caller does: benchmarks/bench_live_vs_upstream.py).
        self.offer_deflate = offer_deflate
        self.headers = dict(headers or {})
        self.stream_sid, self.call_sid, self.account_sid = stream_sid, call_sid, account_sid
        self._clock = clock
        self._playout = make_playout(playout, **dict(playout_params or {}))
        self.recording = PeerRecording(speed=speed, playout=self._playout)
        self._t0 = clock()
        self._sequence = 0
        self._hangup = asyncio.Event()
        self._wake = asyncio.Event()
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._last_activity_ms = 0.0

    # ------------------------------------------------------------------ public

    def now_ms(self) -> float:
        return (self._clock() - self._t0) * MS_PER_S * self.speed

    def hangup(self) -> None:
        """End the call: the peer sends ``stop`` and closes."""
        self._hangup.set()

    async def run(self) -> PeerRecording:
        async with connect(
            self.url,
            additional_headers=self.headers,
            max_size=None,
            compression="deflate" if self.offer_deflate else None,
        ) as ws:
            self._t0 = self._clock()
            await ws.send(connected_json())
            await ws.send(start_json(self.stream_sid, self.call_sid, self.account_sid,
                                     self.custom_parameters, self._next_sequence()))  # fmt: skip
            tasks = [
                asyncio.create_task(self._send_caller_frames(ws), name="peer-caller"),
                asyncio.create_task(self._play_and_echo(), name="peer-playout"),
                asyncio.create_task(self._write_echoes(ws), name="peer-echoes"),
                asyncio.create_task(self._watch_idle(), name="peer-idle"),
                asyncio.create_task(self._measure_rtt(ws), name="peer-ping"),
            ]
            receiver = asyncio.create_task(self._receive(ws), name="peer-receive")
            hangup = asyncio.create_task(self._hangup.wait(), name="peer-hangup")
            try:
                done, _ = await asyncio.wait({receiver, hangup}, return_when="FIRST_COMPLETED")
                if hangup in done:
                    self.recording.closed_by = "peer"
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(stop_json(self.stream_sid, self.account_sid,
                                                self.call_sid, self._next_sequence()))  # fmt: skip
                    await ws.close()
                else:
                    self.recording.closed_by = "server"
            finally:
                for task in [*tasks, receiver, hangup]:
                    task.cancel()
                results = await asyncio.gather(*tasks, receiver, hangup, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(
                result, asyncio.CancelledError | ConnectionClosed
            ):
                raise result
        self.recording.segments = list(self._playout.segments)
        return self.recording

    # ------------------------------------------------------------------ tasks

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _sleep_until(self, media_ms: float) -> None:
        delay_s = (media_ms - self.now_ms()) / self.speed / MS_PER_S
        if delay_s > 0:
            await asyncio.sleep(delay_s)

    async def _send_caller_frames(self, ws: ClientConnection) -> None:
        """Frame k at media time 20k ms, on an absolute clock (no drift from accumulated sleeps)."""
        index = 0
        while True:
            await self._sleep_until(index * FRAME_MS)
            text = inbound_media_json(self.stream_sid, self.caller.frame(index), chunk=index + 1,
                                      timestamp_ms=index * FRAME_MS,
                                      sequence_number=self._next_sequence())  # fmt: skip
            try:
                await ws.send(text)
            except ConnectionClosed:
                return
            self.recording.frames_sent += 1
            index += 1

    async def _measure_rtt(self, ws: ClientConnection) -> None:
        """A few pings at the start: the loopback delay the simulator's prediction uses."""
        for _ in range(PINGS):
            pong = await ws.ping()
            with contextlib.suppress(TimeoutError):
                latency_s = await asyncio.wait_for(pong, PING_TIMEOUT_S)
                self.recording.ping_rtt_ms.append(latency_s * MS_PER_S)
            await asyncio.sleep(PING_INTERVAL_S)

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                self._on_message(frame)
        except ConnectionClosed:
            pass

    def _on_message(self, frame: str | bytes) -> None:
        now = self.now_ms()
        try:
            msg = parse_to_twilio(frame, self.stream_sid)
        except TwilioMessageError as exc:
            # Twilio would end the stream with an error; the lab wants to see every one instead.
            self.recording.protocol_errors.append(f"{now:.1f} ms: {exc}")
            return
        self._last_activity_ms = now
        if isinstance(msg, OutboundMediaMsg):
            self.recording.arrivals.append(Arrival("media", now, len(msg.payload), msg.payload))
            self._playout.receive_media(msg.payload, now)
        elif isinstance(msg, OutboundMarkMsg):
            self.recording.arrivals.append(Arrival("mark", now, mark_name=msg.name))
            self._playout.receive_mark(msg.name, now)
        elif isinstance(msg, ClearMsg):
            self.recording.arrivals.append(Arrival("clear", now))
            names = self._playout.receive_clear(now)
            self._echo([(name, now) for name in names], cleared=True)
        self._wake.set()

    def _echo(self, due: list[tuple[str, float]], *, cleared: bool) -> None:
        """Queue the echoes; one writer task keeps them in order on the wire."""
        for name, _ in due:
            self.recording.echoes.append(Echo(name, self.now_ms(), cleared))
            self._outbox.put_nowait(mark_echo_json(self.stream_sid, name, self._next_sequence()))

    async def _write_echoes(self, ws: ClientConnection) -> None:
        while True:
            text = await self._outbox.get()
            try:
                await ws.send(text)
            except ConnectionClosed:
                return

    async def _play_and_echo(self) -> None:
        """Echo each mark when the playout model says the audio before it has played."""
        while True:
            self._echo(self._playout.advance(self.now_ms()), cleared=False)
            next_ms = self._playout.next_event_ms()
            self._wake.clear()
            timeout_s = None
            if next_ms is not None:
                timeout_s = max(0.0, (next_ms - self.now_ms()) / self.speed / MS_PER_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout_s)

    def playing_until_ms(self) -> float:
        """Media ms at which what arrived so far ends playing (0 before any audio)."""
        segments = self._playout.segments
        return segments[-1][1] if segments else 0.0

    async def _watch_idle(self) -> None:
        if self.idle_hangup_ms is None:
            return
        while True:
            quiet_since = max(self._last_activity_ms, self.playing_until_ms())
            due = max(self.min_call_ms, quiet_since + self.idle_hangup_ms)
            if self.now_ms() >= due:
                self.hangup()
                return
            await self._sleep_until(due)
