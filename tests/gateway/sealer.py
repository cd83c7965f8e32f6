"""A gateway process for `test_workers`: on each `go` line on stdin it appends one event, waits for it to be
sealed and forwarded (or held back), and prints how many batches its sink was sent so far."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from flowhook.gateway.forwarder import MemorySink
from flowhook.gateway.service import Gateway
from flowhook.settings import Settings
from flowhook.spool.config import BatchPolicy
from tests.factories import make_event


async def main(data: Path, first_id: int) -> None:
    policy = BatchPolicy(max_seconds=0.2, hold_seconds=0.0)
    settings = Settings(data_dir=data, webhook_secret="whsec_test", batch=policy)
    sink = MemorySink()
    gateway = Gateway(settings, sink=sink)
    async with gateway.running():
        print("ready", flush=True)
        n = first_id
        while (await asyncio.to_thread(sys.stdin.readline)).strip() == "go":
            await gateway.inbox.append([make_event(n)])
            n += 1
            await asyncio.sleep(0.6)  # sealed at once or by age (0.2 s), then forwarded
            print(len(sink.sent), flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
