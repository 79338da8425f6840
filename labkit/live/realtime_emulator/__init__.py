"""A local OpenAI Realtime server that replays a v1 trace, so the SDK's own model runs offline.

``TraceReplayModel`` replaces the SDK's ``OpenAIRealtimeWebSocketModel`` with a model of our own;
the emulator keeps the SDK's model and replaces OpenAI's server instead. The SDK then does what it
does on a real call: opens a WebSocket, sends ``session.update``, validates and parses every server
event, decodes audio deltas, feeds the playback tracker, and on a barge-in truncates the item where
the tracker says the caller stopped hearing. Point it here with the model config::

    {"url": emulator.url, "api_key": EMULATOR_API_KEY, ...}   # a placeholder, never a real key

``labkit serve --replay TRACE --realtime-emulator`` and ``labkit call --realtime-emulator`` run
calls this way; ``labkit emulate TRACE`` runs it alone for your own server. Which to use: the
emulator where the SDK's real code path matters (lesson 04's call, recording, barge-in
truncation); ``TraceReplayModel`` where the model is not the question and a cheaper, simpler path
is enough (the load benchmark, the strategy tests, ``labkit call``'s default comparison with the
simulator).

What the emulator does, per connection (``EmulatedSession``, sans-I/O, in ``session.py``):

- handshake: path ``/v1/realtime`` and ``Authorization: Bearer <EMULATOR_API_KEY>``, else HTTP
  401/404 (a real key is refused, never logged); then ``session.created`` with the GA defaults.
- ``session.update`` -> ``session.updated`` with the whole merged session; the first one starts the
  replay clock. Output formats other than ``audio/pcmu`` are refused (traces hold mu-law 8 kHz).
- the replay, each trace event at ``start + t_ms / speed``: ``turn_started`` ->
  ``response.created``; an item's first event -> ``response.output_item.added``; ``audio`` ->
  ``response.output_audio.delta``; ``transcript_delta`` ->
  ``response.output_audio_transcript.delta``; ``audio_done`` -> ``response.output_audio.done``;
  ``audio_interrupted`` (the caller barged in) -> ``input_audio_buffer.speech_started``;
  ``turn_ended`` -> ``response.output_item.done`` per item and ``response.done`` (``status``
  ``cancelled`` with reason ``turn_detected`` if interrupted).
  After the last event the connection stays open, as OpenAI's does: the call ends when the caller
  hangs up and the client closes the session. ``close_when_done=True`` closes it normally (1000)
  instead, which the SDK reports to its session as the end of the stream.
- client events, validated field by field (a bad one is answered with an ``error`` event naming the
  code and the param, logged and kept in ``protocol_errors``; the session goes on):
  ``input_audio_buffer.append`` (base64, whole samples) is counted; ``conversation.item.truncate``
  must name an item with audio, its content index, and an ``audio_end_ms`` within the audio sent,
  and is answered with ``conversation.item.truncated``; ``response.cancel`` of the active response
  answers ``response.done`` (``cancelled``, ``client_cancelled``) and drops the rest of that
  response from the replay; ``conversation.item.retrieve`` -> ``conversation.item.retrieved``;
  ``input_audio_buffer.commit``/``clear`` are acknowledged. ``response.create`` and
  ``conversation.item.create``/``delete`` get an ``unsupported_by_emulator`` error: a replay cannot
  answer them.

Protocol facts relied on (GA Realtime API, openai-python 2.x/3.x ``src/openai/types/realtime/``;
beta names from ``src/openai/types/beta/realtime/``):

- server events: ``session.created``/``session.updated`` carry ``session`` (a
  ``RealtimeSessionCreateRequest``: ``type: "realtime"``, ``audio.input/output.format`` one of
  ``{"type": "audio/pcm", "rate": 24000}``, ``{"type": "audio/pcmu"}``, ``{"type": "audio/pcma"}``);
  ``response.created``/``response.done`` carry ``response`` (``RealtimeResponse``: ``id``,
  ``status`` completed/cancelled/failed/incomplete/in_progress, ``status_details.reason``
  turn_detected/client_cancelled/..., ``output`` items); ``response.output_audio.delta`` has
  ``response_id``, ``item_id``, ``output_index``, ``content_index``, ``delta`` (base64) and
  ``event_id``; ``response.output_audio.done`` the same without ``delta``;
  ``response.output_audio_transcript.delta`` the same with a text ``delta``;
  ``input_audio_buffer.speech_started`` has ``audio_start_ms`` and the user ``item_id``;
  ``conversation.item.truncated`` has ``item_id``, ``content_index``, ``audio_end_ms``;
  ``error`` has ``error: {type, code, message, param, event_id}``. The beta API named the audio
  events ``response.audio.delta``, ``response.audio.done``, ``response.audio_transcript.delta``.
- client events: ``session.update`` (``session``), ``input_audio_buffer.append`` (``audio``,
  base64), ``conversation.item.truncate`` (``item_id``, ``content_index``, ``audio_end_ms`` int),
  ``response.cancel`` (optional ``response_id``), ``conversation.item.retrieve`` (``item_id``).
- what openai-agents 0.24 (``agents/realtime/openai_realtime.py``) does with them: it validates
  every server event against the GA ``RealtimeServerEvent`` union, so the beta audio names fail
  validation and reach the session as ``error`` events (the SDK accepts no beta audio name: the
  emulator sends GA names only, and ``labkit import`` reads both); ``session.created`` makes it send
  a second ``session.update`` (tracing); ``session.updated``'s ``audio.output.format`` sets the
  playback tracker's format; ``response.created``/``response.done`` become turn started/ended;
  ``input_audio_buffer.speech_started`` makes it emit ``audio_interrupted`` for the item whose audio
  came last and send ``conversation.item.truncate`` at the tracker's elapsed ms (capped at the
  audio received), with no ``response.cancel`` when ``turn_detection.interrupt_response`` is true
  (the server cancels); ``conversation.item.truncated`` makes it send
  ``conversation.item.retrieve``; a normal close (1000) ends the session's stream.
- not documented, so chosen: whether api.openai.com negotiates permessage-deflate. The emulator
  declines it by default (``compression=True`` to accept it).

See notebooks/04_live_call.ipynb.
"""

from labkit.live.realtime_emulator.server import EMULATOR_API_KEY, REALTIME_PATH, RealtimeEmulator
from labkit.live.realtime_emulator.session import (
    ClientTruncation,
    EmulatedSession,
    ProtocolError,
)

__all__ = [
    "EMULATOR_API_KEY",
    "REALTIME_PATH",
    "ClientTruncation",
    "EmulatedSession",
    "ProtocolError",
    "RealtimeEmulator",
]
