"""TwilioHandler: one Twilio Media Streams call bridged to one Realtime session.

The handler owns no buffering logic. It drives the sans-I/O pieces with the asyncio clock:
model audio goes through the outbound strategy (``labkit.outbound``), caller audio through the
``InboundBuffer``, mark echoes through the strategy's ledger, and every frame through the codec
(``labkit.twilio_messages``). Three tasks run per call: the Twilio reader, the session reader and
ONE timer that sleeps until the strategy's ``next_deadline()`` (or until new outbound work wakes
it); there is no fixed polling loop. Per session event:

- ``audio`` -> ``strategy.push``; ``audio_end`` -> ``strategy.end`` (flush the tail, never clear);
  ``audio_interrupted`` -> ``strategy.interrupt`` (drops what is buffered, sends ``clear``);
- a mark echo -> ``strategy.echo`` -> ``RealtimePlaybackTracker.on_play_bytes`` for exactly the
  bytes that mark covers. Echoes of cleared marks credit nothing, so on barge-in the model
  truncates its item where the caller really stopped hearing it. The tracker learns of an item
  when the caller starts hearing it (``labkit.live.item_starts``), before its first mark echoes:
  a barge-in then truncates that item at what was credited, never leaving it whole.

The call's strategy is the server's (``ServerSettings.call``), overridable per call by
``start.customParameters`` (see ``labkit.live.settings``). When the model's stream ends (a trace
replay ran out, or the model's server closed the session), the handler stops sending caller audio
(it has nowhere to go) but keeps reading marks and ``stop``, lets the strategy drain, waits for the
last marks to be echoed (the caller heard everything) and closes the WebSocket, as hanging up
would.

Bad input policy (everything here is per call: one call's bad message never touches another): a
text frame over 64 KiB, a binary frame, malformed JSON, an unknown event, a wrong streamSid, media
or marks before ``start``, a second ``start``, media on a track other than the caller's
(``inbound``): dropped and counted in ``handler.stats.dropped[reason]``; the call goes on. The
first ``DROPS_LOGGED_PER_REASON`` drops of each reason are logged (reason and size, never a payload
or a secret), the rest only counted, and one line sums them up when the call ends. Everything the
caller sent that reaches a log line is escaped (``labkit.live.log_text``). A socket with no valid
``start`` within ``limits.start_timeout_s`` is closed (1008). A frame over
``limits.max_frame_bytes`` never reaches the handler: the WebSocket layer ends the call with 1009,
logged with the close code. A ``stop`` before ``start`` ends the call cleanly. On ``stop``,
disconnect or a session failure, the session is closed and every task of the call is cancelled and
awaited before ``run`` returns.

Recording (``--record``) never disturbs the call: a recording failure (a full disk) is logged once,
naming the file and the error, and recording stops (``stats.recording_failure``); what was written
stays readable by ``read(path, salvage=True)``. Events the trace cannot hold are skipped, logged
by the recorder and counted in ``stats.recording_skipped``.
See notebooks/04_live_call.ipynb and notebooks/05_barge_in_and_marks.ipynb.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from agents.realtime import RealtimeAgent, RealtimeRunner, RealtimeSession
from agents.realtime.model import RealtimeModel, RealtimePlaybackTracker
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.exceptions import ConnectionClosedOK

from labkit import twilio_messages as tm
from labkit.inbound import InboundBuffer
from labkit.live.item_starts import ItemStarts
from labkit.live.log_text import escaped, shown
from labkit.live.models import ModelChoice
from labkit.live.recording import CallRecordings
from labkit.live.settings import CallSettings, ServerSettings
from labkit.marks import TWILIO_BUFFER_LIMIT_MS
from labkit.outbound import make_strategy, strategy_options
from labkit.outbound.base import AudioChunk, Clear, Media, Outbound, OutboundStrategy
from labkit.traces import TraceRecorder

log = logging.getLogger(__name__)

MS_PER_S = 1000.0
BYTES_PER_S = 8000
MAX_HELD_AUDIO_BYTES = TWILIO_BUFFER_LIMIT_MS * 8  # Twilio's own limit: 10 minutes buffered
DRAIN_MARGIN_S = 5.0  # beyond the audio still queued at Twilio, how long to await the last echoes
CLOSE_NORMAL = 1000
CLOSE_POLICY_VIOLATION = 1008  # no valid start in time
CLOSE_MESSAGE_TOO_BIG = 1009  # what the WebSocket layer sends for a frame over max_frame_bytes
CLOSE_INTERNAL_ERROR = 1011
DROPS_LOGGED_PER_REASON = 3  # per call; the rest are counted and summed up at the end
# Timer lateness kept per call: ~50 firings a second would hold an hour's call as 180,000 floats
# (and /stats would send them all); a uniform sample of this many gives its percentiles.
LATENESS_SAMPLES_KEPT = 4096
ItemKey = tuple[str, int]
CALLER_TRACK = "inbound"  # Twilio's name for the caller's audio (a media's track, by default)


@dataclass
class HandlerStats:
    """What one call sent and received; the load benchmark reads it."""

    messages_sent: int = 0
    media_sent: int = 0
    marks_sent: int = 0
    clears_sent: int = 0
    bytes_sent: int = 0  # mu-law payload bytes sent to Twilio
    model_audio_bytes: int = 0  # mu-law bytes the session delivered
    marks_echoed: int = 0
    marks_credited: int = 0
    marks_credited_bytes: int = 0  # bytes passed to the playback tracker
    caller_bytes_to_model: int = 0
    caller_frames_after_model_ended: int = 0  # heard while the tail played: nowhere to send them
    # real ms late: a uniform sample of the firings (all of them up to LATENESS_SAMPLES_KEPT)
    timer_lateness_ms: list[float] = field(default_factory=list)
    timer_firings: int = 0
    timer_lateness_max_ms: float = 0.0
    dropped: Counter[str] = field(default_factory=Counter)
    session_errors: int = 0
    close_code: int | None = None  # the WebSocket close code the peer's side reported, if any
    start_timed_out: bool = False
    failure: str | None = None  # what ended the call, when an error did (its close code: 1011)
    recording_failure: str | None = None  # what stopped the call's recording early, if anything
    recording_skipped: int = 0  # model events the recording left out (the trace cannot hold them)
    _sampler: random.Random = field(default_factory=lambda: random.Random(0), repr=False,
                                    compare=False)  # fmt: skip

    def add_timer_lateness(self, late_ms: float) -> None:
        """One timer firing ``late_ms`` late: counted, and kept in the sample (reservoir
        sampling, Vitter's algorithm R: every firing equally likely to be kept)."""
        self.timer_firings += 1
        self.timer_lateness_max_ms = max(self.timer_lateness_max_ms, late_ms)
        if len(self.timer_lateness_ms) < LATENESS_SAMPLES_KEPT:
            self.timer_lateness_ms.append(late_ms)
            return
        slot = self._sampler.randrange(self.timer_firings)
        if slot < LATENESS_SAMPLES_KEPT:
            self.timer_lateness_ms[slot] = late_ms

    def as_json(self) -> dict[str, object]:
        """Every field as plain JSON values (``dropped``: reason -> count)."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)
                                  if not f.name.startswith("_")}  # fmt: skip
        out["dropped"] = dict(self.dropped)
        out["timer_lateness_ms"] = list(self.timer_lateness_ms)
        return out


class _Disconnected(Exception):
    """The WebSocket closed (Twilio hung up, or the peer vanished)."""


class TwilioHandler:
    """Serve one call: ``await TwilioHandler(websocket, settings).run()`` on an accepted socket."""

    def __init__(
        self,
        websocket: WebSocket,
        settings: ServerSettings,
        *,
        models: ModelChoice | None = None,
        recordings: CallRecordings | None = None,
    ) -> None:
        self.websocket = websocket
        self.settings = settings
        self.models = models or ModelChoice(settings)
        if recordings is None and settings.record_dir is not None:
            recordings = CallRecordings(
                settings.record_dir, settings.limits.record_max_bytes, self.models
            )
        self.recordings = recordings
        self.stats = HandlerStats()
        self.stream_sid: str | None = None
        self.call_settings: CallSettings = settings.call
        self.tracker = RealtimePlaybackTracker()
        self.strategy: OutboundStrategy | None = None
        self.model: RealtimeModel | None = None
        self.inbound = InboundBuffer()
        self._loop = asyncio.get_running_loop()
        self._t0_s = self._loop.time()
        # A replay at speed s runs the whole call on media time (s x real time), so that the
        # strategy's thresholds mean what they mean at speed 1 and the peer's clock agrees.
        self.clock_speed = settings.replay_speed if self.models.is_replay else 1.0
        self._send_lock = asyncio.Lock()
        self._wake = asyncio.Event()  # new outbound work: the timer recomputes its deadline
        self._settled = asyncio.Event()  # nothing buffered and every mark echoed
        self._model_ended = False  # the model's stream is over: caller audio has nowhere to go
        # Audio sent but not yet credited, to hand the tracker the very bytes that played. Bounded
        # like Twilio's own buffer: beyond it, the oldest items' credits fall back to silence of
        # the same length (the tracker counts only lengths), so a peer that never echoes cannot
        # make a call hold everything it ever said.
        self._item_audio: dict[ItemKey, bytearray] = {}
        self._item_audio_bytes = 0
        self._ended_items: set[ItemKey] = set()  # audio_end seen: forget once heard whole
        self._starts = ItemStarts()  # tells the tracker of an item before its first echo
        self._recorder: TraceRecorder | None = None
        self._encoder: tm.OutboundEncoder | None = None  # the stream's message templates

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Until ``stop``, disconnect, the end of the model's stream, or a session failure."""
        try:
            start = await self._wait_for_start_in_time()
            if start is not None:
                await self._bridge(start)
            await self._close_websocket(CLOSE_NORMAL)  # after stop: a clean close, not 1006
        except (_Disconnected, WebSocketDisconnect):  # also while sending: a hang-up, no error
            self._log_disconnect()
        except Exception as exc:  # never let one call's failure escape into the server
            self.stats.failure = f"{type(exc).__name__}: {escaped(str(exc))}"
            log.error("call %s ended by %s", shown(self.stream_sid), self.stats.failure)
            await self._close_websocket(CLOSE_INTERNAL_ERROR)
        finally:
            self._log_drops_summary()
            self._forget_call()

    async def _wait_for_start_in_time(self) -> tm.StartMsg | None:
        """The ``start``; None after a stop, or when none came within the start timeout."""
        limit_s = self.settings.limits.start_timeout_s
        try:
            async with asyncio.timeout(limit_s):
                return await self._wait_for_start()
        except TimeoutError:
            self.stats.start_timed_out = True
            log.info("media stream closed: no valid start within %g s (--start-timeout-s)", limit_s)
            await self._close_websocket(CLOSE_POLICY_VIOLATION)
            return None

    async def _wait_for_start(self) -> tm.StartMsg | None:
        while True:
            message = await self._receive()
            if isinstance(message, tm.StartMsg):
                return message
            if isinstance(message, tm.StopMsg):
                log.info("stop before start: call ended before it began")
                return None
            if isinstance(message, tm.MediaMsg | tm.MarkMsg | tm.DtmfMsg):
                self._drop("before_start", f"{type(message).__name__} before start")

    async def _bridge(self, start: tm.StartMsg) -> None:
        if self.recordings is not None:  # before the call's clock starts: counting takes a while
            self._recorder = await self.recordings.open(start.stream_sid)
        self._begin_call(start)
        self.model = self.models.new_model()
        runner = RealtimeRunner(self._agent(), model=self.model)
        session = await runner.run(model_config=self.models.model_config(self.tracker))
        async with session:
            tasks = [
                asyncio.create_task(self._read_twilio(session), name="labkit-twilio-reader"),
                asyncio.create_task(self._read_session(session), name="labkit-session-reader"),
                asyncio.create_task(self._run_timer(), name="labkit-outbound-timer"),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc

    def _begin_call(self, start: tm.StartMsg) -> None:
        self.stream_sid = start.stream_sid
        self._encoder = tm.OutboundEncoder(start.stream_sid)
        self.call_settings, problems = self.settings.call.with_parameters(start.custom_parameters)
        for problem in problems:
            log.warning("call %s: %s", shown(self.stream_sid), escaped(problem))
        call = self.call_settings
        self.strategy = build_strategy(call)
        self._t0_s = self._loop.time()
        log.info("call %s started: %s, %s", shown(self.stream_sid), call, self.models.description)

    def _agent(self) -> RealtimeAgent[Any]:
        return RealtimeAgent(name="labkit phone agent", instructions=self.settings.instructions)

    def _forget_item_audio(self) -> None:
        self._item_audio.clear()
        self._item_audio_bytes = 0

    def _forget_call(self) -> None:
        if self.strategy is not None:
            self.strategy.close()
        self._forget_item_audio()
        self._ended_items.clear()
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            try:
                recorder.close()
            except Exception as exc:  # a full disk at the very end: the call is over anyway
                self._recording_failed(recorder, exc)
            self.stats.recording_skipped = recorder.skipped_count

    # ------------------------------------------------------------------ Twilio -> model

    async def _read_twilio(self, session: RealtimeSession) -> None:
        while True:
            message = await self._receive()
            if isinstance(message, tm.MediaMsg) and message.track != CALLER_TRACK:
                # a bidirectional stream carries the caller's track only: any other audio put on
                # the caller's timeline would replace the caller's frames of the same timestamps
                self._drop("wrong_track", f"media on track {message.track!r:.40}")
            elif isinstance(message, tm.MediaMsg):
                await self._to_model(session, message)
            elif isinstance(message, tm.MarkMsg):
                self._on_echo(message.name)
            elif isinstance(message, tm.StopMsg):
                log.info("call %s: stop", shown(self.stream_sid))
                return
            elif isinstance(message, tm.StartMsg):
                self._drop("duplicate_start", "a second start")

    async def _to_model(self, session: RealtimeSession, message: tm.MediaMsg) -> None:
        """Caller audio to the model while its stream lasts. When the model's server ends the
        session (OpenAI at its maximum duration; the emulator at the trace's end) the call goes on
        draining what the caller has not heard yet, so marks and ``stop`` are still read."""
        if self._model_ended:
            self.stats.caller_frames_after_model_ended += 1
            return
        for piece in self.inbound.push(message.payload, message.timestamp_ms):
            try:
                await session.send_audio(piece)
            except ConnectionClosedOK:  # closed normally before the SDK ended the stream
                self._model_ended = True
                self.stats.caller_frames_after_model_ended += 1
                return
            self.stats.caller_bytes_to_model += len(piece)

    async def _receive(self) -> tm.FromTwilio | None:
        """The next valid message; None when the frame was bad (dropped and counted)."""
        frame = await self.websocket.receive()
        if frame["type"] == "websocket.disconnect":
            self.stats.close_code = frame.get("code")
            raise _Disconnected
        text = frame.get("text")
        if text is None:
            self._drop("binary", f"binary frame of {len(frame.get('bytes') or b'')} bytes")
            return None
        if len(text) * 4 > tm.MAX_MESSAGE_BYTES and len(text.encode()) > tm.MAX_MESSAGE_BYTES:
            self._drop("oversize", f"text frame of {len(text)} chars > {tm.MAX_MESSAGE_BYTES} B")
            return None
        try:
            return tm.parse(text, expected_stream_sid=self.stream_sid)
        except tm.TwilioMessageError as exc:
            self._drop(self._classify(text), str(exc)[:200])
            return None

    def _classify(self, text: str) -> str:
        """Why a frame the codec refused was bad, for the stats (only runs on bad frames)."""
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return "malformed_json"
        if not isinstance(obj, dict):
            return "malformed_json"
        if obj.get("event") not in tm.FROM_TWILIO_EVENTS:
            return "unknown_event"
        sid = obj.get("streamSid")
        if self.stream_sid is not None and isinstance(sid, str) and sid != self.stream_sid:
            return "wrong_stream_sid"
        return "invalid_fields"

    def _drop(self, reason: str, detail: str) -> None:
        count = self.stats.dropped[reason] + 1
        self.stats.dropped[reason] = count
        if count > DROPS_LOGGED_PER_REASON:
            return
        last = count == DROPS_LOGGED_PER_REASON
        more = "; more of this reason are counted, not logged" if last else ""
        log.warning("call %s: dropped a message (%s): %s%s", shown(self.stream_sid), reason,
                    escaped(detail), more)  # fmt: skip

    def _log_drops_summary(self) -> None:
        dropped = self.stats.dropped
        if dropped:
            counts = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items()))
            log.warning("call %s: dropped %d bad messages in all (%s)", shown(self.stream_sid),
                        dropped.total(), counts)  # fmt: skip

    def _log_disconnect(self) -> None:
        code = self.stats.close_code
        if code == CLOSE_MESSAGE_TOO_BIG:
            cap = self.settings.limits.max_frame_bytes
            # the server's WebSocket layer closes so over a frame beyond the cap; a client may
            # also close with this code itself, so the log names both
            log.warning("call %s ended with close code %d (message too big): a frame over %d "
                        "bytes (--max-frame-kib), or the caller's side closed so",
                        shown(self.stream_sid), code, cap)  # fmt: skip
        else:
            log.info("call %s: Twilio disconnected (close code %s)", shown(self.stream_sid), code)

    def _on_echo(self, name: str) -> None:
        assert self.strategy is not None
        self.stats.marks_echoed += 1
        mark = self.strategy.echo(name, self._now_ms())
        if mark is not None:
            key = (mark.item_id, mark.content_index)
            played = self._item_audio.get(key, bytearray())
            credited = bytes(played[mark.start : mark.end]).ljust(mark.size, b"\xff")
            if key in self._ended_items and mark.end >= len(played):  # heard whole: a long
                self._item_audio_bytes -= len(self._item_audio.pop(key, b""))  # call must not
                self._ended_items.discard(key)  # keep all it ever said
            self.tracker.on_play_bytes(mark.item_id, mark.content_index, credited)
            self.stats.marks_credited += 1
            self.stats.marks_credited_bytes += len(credited)
        self._tell_started(self._starts.echoed(name))
        self._check_settled()

    def _tell_started(self, key: ItemKey | None) -> None:
        """The caller starts hearing item ``key`` now: the tracker names it from 0 ms, so a
        barge-in before its first mark echoes truncates it, not nothing (``ItemStarts``)."""
        if key is not None:
            self.tracker.on_play_ms(key[0], key[1], 0.0)

    # ------------------------------------------------------------------ model -> Twilio

    async def _read_session(self, session: RealtimeSession) -> None:
        async for event in session:
            if event.type == "audio":
                await self._on_model_audio(event.item_id, event.content_index, event.audio.data)
            elif event.type == "audio_end":
                self._ended_items.add((event.item_id, event.content_index))
                await self._on_strategy_output(
                    self._strategy().end(event.item_id, event.content_index, self._now_ms())
                )
            elif event.type == "audio_interrupted":
                self._forget_item_audio()  # nothing sent before a clear is ever credited
                self._ended_items.clear()
                await self._on_strategy_output(self._strategy().interrupt(self._now_ms()))
            elif event.type == "error":
                self.stats.session_errors += 1
                log.warning("call %s: session error event: %s", shown(self.stream_sid),
                            escaped(str(event.error)))  # fmt: skip
            elif event.type == "raw_model_event" and self._recorder is not None:
                self._record(self._recorder, event.data)
        self._model_ended = True
        await self._hang_up_when_heard()

    def _record(self, recorder: TraceRecorder, model_event: Any) -> None:
        """Record one model event; a failure stops the recording, never the call."""
        try:
            recorder.record(model_event, self._now_ms())
        except Exception as exc:
            self._recording_failed(recorder, exc)
            self._recorder = None
        self.stats.recording_skipped = recorder.skipped_count

    def _recording_failed(self, recorder: TraceRecorder, exc: Exception) -> None:
        """Log the failure (the one line of it), then close the file, ignoring a second one."""
        recorder.abandon()  # already done by a recorder whose write failed; idempotent
        if self.stats.recording_failure is not None:
            return
        self.stats.recording_failure = f"{type(exc).__name__}: {escaped(str(exc))}"
        log.error("call %s: recording %s stopped (the call goes on): %s", shown(self.stream_sid),
                  recorder.path, self.stats.recording_failure)  # fmt: skip

    async def _on_model_audio(self, item_id: str, content_index: int, data: bytes) -> None:
        self.stats.model_audio_bytes += len(data)
        self._item_audio.setdefault((item_id, content_index), bytearray()).extend(data)
        self._item_audio_bytes += len(data)
        while self._item_audio_bytes > MAX_HELD_AUDIO_BYTES and len(self._item_audio) > 1:
            oldest = next(iter(self._item_audio))
            self._item_audio_bytes -= len(self._item_audio.pop(oldest))
        chunk = AudioChunk(item_id, content_index, data)
        await self._on_strategy_output(self._strategy().push(chunk, self._now_ms()))

    async def _on_strategy_output(self, outbound: list[Outbound]) -> None:
        self._wake.set()  # the strategy's deadline may have moved
        await self._send(outbound)

    async def _send(self, outbound: list[Outbound]) -> None:
        """Send in generation order: bookkeeping happens now, the lock is FIFO."""
        if not outbound:
            self._check_settled()
            return
        assert self.stream_sid is not None
        texts = [text for item in outbound for text in self._account(item)]
        async with self._send_lock:
            for text in texts:
                await self.websocket.send_text(text)
        self._check_settled()

    def _account(self, item: Outbound) -> list[str]:
        assert self._encoder is not None, "the encoder is made at start"
        texts = self._encoder.outbound(item)
        self.stats.messages_sent += len(texts)
        if isinstance(item, Clear):
            self.stats.clears_sent += 1
            self._starts.cleared()
        elif isinstance(item, Media):
            self._tell_started(self._starts.sent(item))
            self.stats.media_sent += len(texts) - len(item.marks)
            self.stats.marks_sent += len(item.marks)
            self.stats.bytes_sent += len(item.payload)
        return texts

    # ------------------------------------------------------------------ the one timer

    async def _run_timer(self) -> None:
        """Sleep until the strategy's next deadline, or until new work may have moved it."""
        while True:
            self._wake.clear()
            deadline_ms = self._strategy().next_deadline()
            if deadline_ms is None:
                await self._wake.wait()
                continue
            if deadline_ms > self._now_ms():
                handle = self._loop.call_at(self._loop_time_s(deadline_ms), self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    handle.cancel()
            now_ms = self._now_ms()
            if now_ms < deadline_ms:
                continue  # woken early by new work
            self.stats.add_timer_lateness((now_ms - deadline_ms) / self.clock_speed)
            await self._send(self._strategy().poll(now_ms))
            if self._strategy().next_deadline() == deadline_ms:
                log.error("strategy %s did not advance its deadline", self.call_settings.strategy)
                await asyncio.sleep(FRAME_GUARD_S)

    # ------------------------------------------------------------------ end of the model stream

    def _check_settled(self) -> None:
        strategy = self.strategy
        idle = strategy is not None and strategy.next_deadline() is None
        if idle and strategy is not None and not strategy.ledger.pending_count:
            self._settled.set()
        else:
            self._settled.clear()

    async def _hang_up_when_heard(self) -> None:
        """The model said all it will: let the last audio play out, then close like a hang-up."""
        # bytes still buffered by a pacing strategy are unheard too, not only those sent
        unheard_bytes = self.stats.model_audio_bytes - self.stats.marks_credited_bytes
        unheard_s = unheard_bytes / BYTES_PER_S / self.clock_speed
        self._check_settled()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), DRAIN_MARGIN_S + max(unheard_s, 0.0))
        log.info("call %s: model stream ended, closing", shown(self.stream_sid))
        await self._close_websocket(CLOSE_NORMAL)

    async def _close_websocket(self, code: int) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=code)

    # ------------------------------------------------------------------ helpers

    def _now_ms(self) -> float:
        """Call time in media ms (real ms x clock_speed) since ``start``."""
        return (self._loop.time() - self._t0_s) * MS_PER_S * self.clock_speed

    def _loop_time_s(self, call_ms: float) -> float:
        return self._t0_s + call_ms / MS_PER_S / self.clock_speed

    def _strategy(self) -> OutboundStrategy:
        assert self.strategy is not None, "strategy is set at start"
        return self.strategy


FRAME_GUARD_S = 0.02  # only if a strategy misbehaves: avoid spinning on a deadline that never moves


def build_strategy(call: CallSettings) -> OutboundStrategy:
    """The call's strategy; ``align_frames`` only goes to strategies that take it."""
    options: dict[str, Any] = {"mark_every_ms": call.mark_every_ms}
    if "align_frames" in strategy_options(call.strategy):
        options["align_frames"] = call.align_frames
    elif call.align_frames:
        log.warning("strategy %s has no align_frames option; ignored", call.strategy)
    return make_strategy(call.strategy, call.threshold_ms, **options)
