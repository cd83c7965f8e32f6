"""What the gateway sees of its own queue and its own door, written down every second.

- `recorder`: the spool's levels (events per type in each state), sampled every 0.1 s and integrated into
  event-seconds per second; every delivery's outcome (accepted, refused by status, quarantined, timed out)
  counted per source and type; the gateway's CPU per second.
- `levels`: the levels themselves, counted from the inbox's memory and the spool's state folders.
- `log`: one JSON-lines file per minute and writer under `<spool>/samples/`, since only one process may
  open the DuckDB file; `archive` moves finished files into the store's tables and reads a window back.

The report compares the sampled event-seconds with those its per-event timestamps give (Little's law, checked
from two independent sources): a miscount, a lost row or a shifted clock shows as a gap.
"""
