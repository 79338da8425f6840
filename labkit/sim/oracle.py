"""The oracle: the least pre-roll that buys each amount of concealment, given the arrivals.

For one item with media offsets m_i and arrival times a_i at Twilio, holding the first byte back by
P ms (pre-roll) makes FIFO playout conceal max(0, D* - P) ms in total, where
D* = max_i(a_i - m_i) - (a_0 - m_0) (Moon, Kurose & Towsley 1998); a fixed schedule P ms after the
first arrival discards every message with a_i - m_i - (a_0 - m_0) > P. ``frontier`` tabulates both
against P, so a strategy's (added latency, concealment) point can be placed against the best any
buffer could do. See notebooks/02_threshold_sweep.ipynb.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

BYTES_PER_MS = 8


def lateness_ms(
    arrivals_ms: npt.ArrayLike, offsets_ms: npt.ArrayLike, items: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """a_i - m_i - (a_0 - m_0) per message, measured from its item's first message."""
    a = np.asarray(arrivals_ms, dtype=np.float64)
    m = np.asarray(offsets_ms, dtype=np.float64)
    if a.shape != m.shape:
        raise ValueError(f"frontier: {len(a)} arrivals but {len(m)} offsets")
    codes = np.zeros(len(a), dtype=np.int64) if items is None else _codes(items)
    transit = a - m
    if len(a) == 0:
        return transit
    _, first = np.unique(codes, return_index=True)  # codes are 0..k-1 in order of appearance
    late: npt.NDArray[np.float64] = transit - transit[first][codes]
    return late


def _codes(items: npt.ArrayLike) -> npt.NDArray[np.int64]:
    seen: dict[object, int] = {}
    return np.array([seen.setdefault(k, len(seen)) for k in np.asarray(items).tolist()], np.int64)


def frontier(
    arrivals_ms: npt.ArrayLike,
    offsets_ms: npt.ArrayLike,
    sizes: npt.ArrayLike | None = None,
    items: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """For each amount of concealment, the least pre-roll that achieves it.

    Rows (one per breakpoint, pre-roll ascending): ``preroll_ms``; ``concealed_ms``, the total FIFO
    underrun when every item is held back ``preroll_ms`` (sum over items of max(0, D*_k - P));
    ``late_ms``, the audio a fixed schedule ``preroll_ms`` after first arrival discards (needs
    ``sizes`` in bytes, else each message counts as 0 ms and only ``late_messages`` is meaningful);
    ``late_messages``. The last row is D* itself, where everything reaches zero.
    """
    late = lateness_ms(arrivals_ms, offsets_ms, items)
    codes = np.zeros(len(late), dtype=np.int64) if items is None else _codes(items)
    durations = (
        np.zeros(len(late)) if sizes is None else np.asarray(sizes, dtype=np.float64) / BYTES_PER_MS
    )
    worst_per_item = np.full(int(np.max(codes)) + 1 if len(codes) else 0, 0.0)
    np.maximum.at(worst_per_item, codes, late)
    prerolls = np.unique(np.r_[0.0, np.clip(late, 0.0, None)])
    concealed = np.clip(worst_per_item[None, :] - prerolls[:, None], 0.0, None).sum(axis=1)
    is_late = late[None, :] > prerolls[:, None]
    return pd.DataFrame({
        "preroll_ms": prerolls,
        "concealed_ms": concealed,
        "late_ms": (is_late * durations[None, :]).sum(axis=1),
        "late_messages": is_late.sum(axis=1),
    })  # fmt: skip


def schedule_frontier(schedule: pd.DataFrame) -> pd.DataFrame:
    """``frontier`` of the media arrivals in a simulated or observed schedule."""
    media = schedule[schedule["kind"] == "media"]
    keys = zip(media["item_id"], media["content_index"], strict=True)
    items = [f"{item_id}/{index}" for item_id, index in keys]
    return frontier(
        media["arrived_ms"].to_numpy(dtype=np.float64),
        media["offset"].to_numpy(dtype=np.float64) / BYTES_PER_MS,
        media["size"].to_numpy(),
        items,
    )
