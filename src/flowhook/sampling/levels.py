"""The spool's levels: events per type in each state, counted where they are.

Open batches are counted from the inbox's memory (exact, and it knows batches still being sealed); the
others from the state folders, a batch's size read from its file once and remembered by id. The folders
are read in the order batches move (ready → sent → claimed), each batch counted in the first state it is
seen in, so a batch moving on during a count is counted once, not twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from flowhook.sampling.recorder import STATES, Levels
from flowhook.spool import Spool, State
from flowhook.spool.batches import event_type_of

_FOLDERS = (State.READY, State.SENT, State.CLAIMED)


class SpoolLevels:
    """Counts a local spool's levels, given the inbox's open batches ({batch id: (type, events)}) as taken
    just before: those are read on the event loop, the folders in a thread."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._sizes: dict[str, int] = {}

    def note(self, batch_id: str, count: int) -> None:
        """The size of a batch sealed here, so its file need not be read."""
        self._sizes[batch_id] = count

    def __call__(self, open_batches: Mapping[str, tuple[str, int]], *, folders: bool = True) -> Levels:
        """The levels; without `folders` only the open batches (another gateway process counts the folders)."""
        levels: dict[str, list[int]] = {}
        seen: set[str] = set()
        for batch_id, (event_type, count) in open_batches.items():
            seen.add(batch_id)
            levels.setdefault(event_type, [0] * len(STATES))[0] += count
        for state in _FOLDERS if folders else ():
            index = STATES.index(state.value)
            for entry in os.scandir(self._spool.root / state.value):
                if not entry.name.endswith(".jsonl"):
                    continue
                batch_id = entry.name.removesuffix(".jsonl")
                if batch_id in seen:
                    continue
                seen.add(batch_id)
                size = self._size(state, batch_id)
                if size is not None:
                    levels.setdefault(event_type_of(batch_id), [0] * len(STATES))[index] += size
        for gone in self._sizes.keys() - seen if folders else ():
            del self._sizes[gone]
        return levels

    def _size(self, state: State, batch_id: str) -> int | None:
        size = self._sizes.get(batch_id)
        if size is None:
            try:
                size = self._spool.ref(state, batch_id).count
            except FileNotFoundError:
                return None  # moved on (or done) since it was listed
            self._sizes[batch_id] = size
        return size
