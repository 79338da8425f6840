"""TraceReplayModel: a real ``agents.realtime.RealtimeModel`` that plays a recorded trace.

It lets a real ``RealtimeSession`` (and so the real Twilio handler) run with no API key: each
trace event is delivered at its own time on an absolute schedule (``start + t_ms / speed``, never
accumulated sleeps, so a long trace does not drift). It behaves like the OpenAI model where the
handler can tell the difference:

- ``connect()`` starts a task and returns at once; every connect starts from fresh state, so one
  instance can serve call after call (one call at a time).
- ``playback_tracker.set_audio_format("g711_ulaw")`` is called when a tracker is given, as the real
  model does from ``session.created``; without it 160 mu-law bytes would count as 3.3 ms.
- ``RealtimeModelSendInterrupt`` (``session.interrupt()``) emits ``audio_interrupted`` for the item
  playing, records the truncation point the tracker reports (what the real model would send as
  ``conversation.item.truncate``), resets the tracker and drops the rest of that response's audio.
- the trace's own ``audio_interrupted`` events (the caller barged in while it was recorded) are
  emitted at their times, with the same tracker handling.
- the stream ends with ``RealtimeModelEndOfStreamEvent``.

Caller audio (``send_audio``) is accepted and counted, never interpreted.
See notebooks/04_live_call.ipynb and notebooks/05_barge_in_and_marks.ipynb.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from agents.realtime.model import (
    RealtimeModel,
    RealtimeModelConfig,
    RealtimeModelListener,
    RealtimePlaybackTracker,
)
from agents.realtime.model_events import (
    RealtimeModelAudioDoneEvent,
    RealtimeModelAudioEvent,
    RealtimeModelAudioInterruptedEvent,
    RealtimeModelEndOfStreamEvent,
    RealtimeModelEvent,
    RealtimeModelExceptionEvent,
    RealtimeModelTranscriptDeltaEvent,
    RealtimeModelTurnEndedEvent,
    RealtimeModelTurnStartedEvent,
)
from agents.realtime.model_inputs import (
    RealtimeModelSendAudio,
    RealtimeModelSendEvent,
    RealtimeModelSendInterrupt,
)

from labkit.audio import BYTES_PER_MS
from labkit.live.settings import check_replay_speed
from labkit.traces import Trace, TraceEvent

log = logging.getLogger(__name__)

ItemKey = tuple[str, int]
MS_PER_S = 1000.0


@dataclass(frozen=True, slots=True)
class Truncation:
    """Where the model believed the caller stopped hearing an item when it was interrupted."""

    item_id: str
    content_index: int
    heard_ms: float | None  # the tracker's elapsed ms for that item; None: the model had no tracker


class TraceReplayModel(RealtimeModel):
    """Replays ``trace`` into whatever session connects, ``speed`` times faster than recorded."""

    def __init__(self, trace: Trace, speed: float = 1.0) -> None:
        check_replay_speed("TraceReplayModel: speed", speed)
        self.trace = trace
        self.speed = speed
        self._listeners: list[RealtimeModelListener] = []
        self._task: asyncio.Task[None] | None = None
        self._reset(tracker=None)

    def _reset(self, tracker: RealtimePlaybackTracker | None) -> None:
        self._tracker = tracker
        self._playing: ItemKey | None = None
        self._item_response: dict[ItemKey, str] = {}
        self._emitted_bytes: dict[ItemKey, int] = {}  # per item: audio delivered so far
        self._cancelled_responses: set[str] = set()
        self.audio_bytes_received = 0
        self.audio_bytes_emitted = 0
        self.truncations: list[Truncation] = []
        self.ended = False

    # ------------------------------------------------------------------ RealtimeModel API

    async def connect(self, options: RealtimeModelConfig) -> None:
        if self._task is not None and not self._task.done():
            raise RuntimeError("TraceReplayModel is already connected; close() it first")
        self._reset(options.get("playback_tracker"))
        if self._tracker is not None:
            self._tracker.set_audio_format("g711_ulaw")
        self._task = asyncio.create_task(self._play(), name="labkit-trace-replay")

    def add_listener(self, listener: RealtimeModelListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: RealtimeModelListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def send_event(self, event: RealtimeModelSendEvent) -> None:
        if isinstance(event, RealtimeModelSendAudio):
            self.audio_bytes_received += len(event.audio)
        elif isinstance(event, RealtimeModelSendInterrupt):
            await self._on_interrupt(event)
        # text input, tool output, session updates: a trace has no answer to them

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if (current := asyncio.current_task()) is not None and current.cancelling():
                    raise

    # ------------------------------------------------------------------ playback

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        start_s = loop.time()
        try:
            for event in self.trace.events:
                due_s = start_s + event.t_ms / MS_PER_S / self.speed
                delay_s = due_s - loop.time()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                await self._deliver(event)
        except Exception as exc:  # a listener failed: tell the session, as the real model does
            log.warning("trace replay stopped: %s", type(exc).__name__)
            await self._emit(RealtimeModelExceptionEvent(exception=exc, context="trace replay"))
            return
        self.ended = True
        await self._emit(RealtimeModelEndOfStreamEvent())

    async def _deliver(self, event: TraceEvent) -> None:
        model_event = self._translate(event)
        if model_event is None:
            return
        if isinstance(model_event, RealtimeModelAudioInterruptedEvent):
            self._interrupt_tracker(model_event.item_id, model_event.content_index)
        await self._emit(model_event)

    def _translate(self, event: TraceEvent) -> RealtimeModelEvent | None:
        """The SDK model event for one trace event; None to skip it (unknown, or cancelled)."""
        fields = event.fields
        if event.type == "audio":
            return self._audio_event(event)
        if event.type == "audio_done":
            key = (str(fields["item_id"]), int(fields["content_index"]))
            if self._item_response.get(key) in self._cancelled_responses:
                return None
            return RealtimeModelAudioDoneEvent(item_id=key[0], content_index=key[1])
        if event.type == "audio_interrupted":
            return RealtimeModelAudioInterruptedEvent(
                item_id=str(fields["item_id"]), content_index=int(fields["content_index"])
            )
        if event.type == "turn_started":
            return RealtimeModelTurnStartedEvent(response_id=_optional_str(fields, "response_id"))
        if event.type == "turn_ended":
            return RealtimeModelTurnEndedEvent(response_id=_optional_str(fields, "response_id"))
        if event.type == "transcript_delta":
            response_id = str(fields.get("response_id", ""))
            if response_id in self._cancelled_responses:
                return None
            return RealtimeModelTranscriptDeltaEvent(
                item_id=str(fields["item_id"]), delta=str(fields["delta"]), response_id=response_id
            )
        return None  # forward compatible: unknown types are skipped

    def _audio_event(self, event: TraceEvent) -> RealtimeModelAudioEvent | None:
        fields = event.fields
        key = (str(fields["item_id"]), int(fields["content_index"]))
        response_id = str(fields.get("response_id", ""))
        if response_id in self._cancelled_responses:
            return None
        self._item_response[key] = response_id
        self._playing = key
        self.audio_bytes_emitted += len(event.audio)
        self._emitted_bytes[key] = self._emitted_bytes.get(key, 0) + len(event.audio)
        return RealtimeModelAudioEvent(
            data=event.audio, response_id=response_id, item_id=key[0], content_index=key[1]
        )

    # ------------------------------------------------------------------ interruption

    async def _on_interrupt(self, event: RealtimeModelSendInterrupt) -> None:
        key = self._interrupted_item(event.response_id)
        if key is None:
            return  # nothing of that response ever played: nothing to interrupt
        response_id = self._item_response[key]
        self._cancelled_responses.add(response_id)
        if event.cancel_response_only:
            return
        self._interrupt_tracker(*key)
        await self._emit(RealtimeModelAudioInterruptedEvent(item_id=key[0], content_index=key[1]))

    def _interrupted_item(self, response_id: str | None) -> ItemKey | None:
        if response_id is None:
            return self._playing
        owned = [key for key, rid in self._item_response.items() if rid == response_id]
        return owned[-1] if owned else None

    def _interrupt_tracker(self, item_id: str, content_index: int) -> None:
        """Record what the real model truncates, then reset the tracker. As the SDK's model does
        (``OpenAIRealtimeWebSocketModel``, on ``speech_started``): the item the tracker names, at
        its elapsed ms; nothing when it names none; nothing when it names another item that
        played whole (an earlier answer, finished)."""
        if self._tracker is None:  # no playback known: the interrupted item, at no credit
            self.truncations.append(Truncation(item_id, content_index, None))
        else:
            state = self._tracker.get_state()
            named, elapsed_ms = state["current_item_id"], state["elapsed_ms"]
            if named is not None and elapsed_ms is not None:
                key = (named, state["current_item_content_index"] or 0)
                whole_ms = self._emitted_bytes.get(key, 0) / BYTES_PER_MS
                if key == (item_id, content_index) or elapsed_ms < whole_ms:
                    heard_ms = min(elapsed_ms, whole_ms)  # the SDK caps it at the audio's length
                    self.truncations.append(Truncation(key[0], key[1], heard_ms))
            self._tracker.on_interrupted()
        if self._playing == (item_id, content_index):
            self._playing = None

    async def _emit(self, event: RealtimeModelEvent) -> None:
        for listener in list(self._listeners):
            await listener.on_event(event)


def _optional_str(fields: dict[str, object], key: str) -> str | None:
    value = fields.get(key)
    return None if value is None else str(value)
