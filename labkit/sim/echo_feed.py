"""Mark echoes reaching the app while a run is still sending: the event loop's world, in steps.

A strategy that learns from echoes (``adaptive``) cannot be simulated in stages like the
echo-blind ones (labkit/sim/fastpath.py): what it sends next depends on echoes of what it sent.
But it reads them only at a few moments (``adaptive``: when an item starts), so its plan
(labkit/sim/adaptive_plan.py) asks here, at those moments only, which echoes have reached the app
by then, given every message sent so far.

With FIFO playout (``fifo`` and ``frame_padding``) over in-order links that is computed exactly:

- each message's arrival over the forward link, drawn as it is sent (``Link.send``, as the
  event loop does);
- the playout model's own arithmetic (``FifoPlayout.receive_media``/``receive_mark``/
  ``receive_clear``): a mark is echoed once the audio queued before it has played, and a clear
  echoes every mark still pending at its arrival. So marks echo in the order they were sent,
  and with in-order return, reach the app in that order;
- each echo's trip back over the return link, drawn in echo order. An echo due by ``now`` is
  final: a clear sent from ``now`` on arrives no earlier and, on a tie, lets it go first (as
  ``play_fifo`` and the event loop break ties); later ones stay tentative until then.

tests/test_sim_adaptive_plan.py checks the runs built on it against the event loop.
See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import math
from collections import deque

from labkit.outbound.base import BYTES_PER_MS, FRAME_BYTES, Mark
from labkit.sim.links import Link


class EchoFeed:
    """The world seen by a plan: told each message as it is sent, it answers which echoes
    reached the app by a given time. ``arrived_ms`` holds each message's arrival at Twilio."""

    def __init__(self, fwd: Link, back: Link, pad_to_frame: bool = False) -> None:
        self.fwd, self.back = fwd, back  # fresh links of the run's kind and seeds
        self._send_fwd = fwd.send  # bound once: a call per message
        self.pad_to_frame = pad_to_frame
        self.arrived_ms: list[float] = []  # by row, as the messages were sent
        self._tail_ms = -math.inf  # when everything queued at Twilio so far has played
        # marks whose echo a clear may still bring forward, in send order: echo time, mark
        self._pending_ms: deque[float] = deque()
        self._pending_marks: deque[Mark] = deque()
        self._returning: deque[tuple[float, Mark]] = deque()  # (reaches the app, mark)

    # The three message kinds: FifoPlayout's float operations, in its order (a message reaches
    # the model in send order; echoes of marks are decided as it gets them).

    def media(self, now: float, size: int) -> None:
        """A media message of ``size`` bytes sent at ``now``."""
        arrival = self._send_fwd(now)
        self.arrived_ms.append(arrival)
        tail_ms = self._tail_ms
        start_ms = tail_ms if tail_ms > arrival else arrival
        end_ms = start_ms + size / BYTES_PER_MS
        if self.pad_to_frame:
            end_ms += (-size % FRAME_BYTES) / BYTES_PER_MS
        self._tail_ms = end_ms

    def mark(self, now: float, mark: Mark) -> None:
        """``mark`` sent at ``now``: echoed once the audio queued before it has played."""
        arrival = self._send_fwd(now)
        self._pending_marks.append(mark)
        self.arrived_ms.append(arrival)
        self._pending_ms.append(max(arrival, self._tail_ms))

    def clear(self, now: float) -> None:
        """A clear sent at ``now``: marks due before it arrived echo then (those due at its
        instant too when it was sent that instant); it echoes the rest on arrival."""
        arrival = self.fwd.send(now)
        self.arrived_ms.append(arrival)
        before = arrival if now == arrival else math.nextafter(arrival, -math.inf)
        pending_ms = self._pending_ms
        last = len(pending_ms) - 1
        while last >= 0 and pending_ms[last] > before:
            pending_ms[last] = arrival
            last -= 1
        self._tail_ms = min(self._tail_ms, arrival)

    def reached_by(self, now: float) -> list[tuple[float, Mark]]:
        """(arrival at the app, mark) of each echo that reached the app at or before
        ``now`` and was not returned before, in order. Every message sent before ``now`` must
        have been told."""
        pending_ms, pending_marks = self._pending_ms, self._pending_marks
        returning, send_back = self._returning, self.back.send
        # echoes due by now are final: they go back over the return link, in order
        while pending_ms and pending_ms[0] <= now:
            returning.append((send_back(pending_ms.popleft()), pending_marks.popleft()))
        reached = []
        while returning and returning[0][0] <= now:
            reached.append(returning.popleft())
        return reached
