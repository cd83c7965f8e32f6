"""The gateway's long-lived parts and the rules that join them: when a sealed batch wakes a run.

The HTTP routes (`app`) hold no state of their own: each request reaches these parts through `Gateway`.
Several gateway processes may serve one spool (`flowhook gateway --workers N`): each has its own inbox slot,
whether a batch wakes a run is decided under its type's spool lock (`flowhook.spool.slots`), and the process
holding the sampler lock samples the shared folders (another takes the lock over if it dies).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

from flowhook.deployments.agreement import warn_undeployed
from flowhook.events import load_catalog
from flowhook.gateway.forwarder import BatchSink, Forwarder, PrefectEventSink
from flowhook.gateway.intake import Intake
from flowhook.gateway.limits import AddressBuckets, TokenBucket, spool_bytes
from flowhook.gateway.quarantine import Quarantine
from flowhook.gateway.secrets import secret_store
from flowhook.gateway.uploader import Uploader
from flowhook.sampling.levels import SpoolLevels
from flowhook.sampling.log import SampleLog
from flowhook.sampling.recorder import Levels, Recorder
from flowhook.settings import Settings
from flowhook.spool import BatchRef, Inbox, Spool, State, open_spool
from flowhook.spool.slots import FileLock

logger = logging.getLogger(__name__)


class Gateway:
    """The gateway's long-lived parts: sources, secrets, quarantine, inbox and forwarder."""

    def __init__(self, settings: Settings, sink: BatchSink | None = None) -> None:
        self.settings = settings
        self.sources = settings.source_configs()
        self.intake = Intake(self.sources, load_catalog(settings.event_modules))
        self.secrets = secret_store(settings)
        self.quarantine = Quarantine(settings.quarantine_dir)
        self.limiters = {
            name: TokenBucket(config.rate_limit, config.burst)
            for name, config in self.sources.items()
            if config.rate_limit is not None
        }
        ingress = settings.ingress
        self.unverified = AddressBuckets(
            ingress.unverified_rate, ingress.unverified_burst, max_addresses=ingress.unverified_addresses
        )
        # The inbox is always on this machine's disk; the batches it seals wait for runs in `spool`: that same
        # folder, or S3 (then each is uploaded before Prefect hears of it).
        self.spool = open_spool(settings)
        self.local = self.spool if isinstance(self.spool, Spool) else Spool(settings.spool_dir)
        self.uploader = (
            None if self.spool is self.local else Uploader(self.local, self.spool, on_uploaded=self._uploaded)
        )
        self._remote_waiting: set[str] = set()
        self.sink = sink or PrefectEventSink(settings.prefect_api_url)
        self.forwarder = Forwarder(self.spool, self.sink)
        self.inbox = Inbox(
            self.local,
            policy=settings.batch_policy,
            on_sealed=self._sealed,
            waiting=self._waiting,
            # On S3 whether a run is awake costs a LIST: those batches wait for `max_seconds` instead.
            seal_at_once=self._will_wake if self.uploader is None else None,
            on_recovered=self._recovered,
        )
        # What the report checks its figures against: the queue's levels and every delivery's outcome.
        self.recorder = Recorder(SampleLog(settings.samples_dir))
        # Sampled on this machine's spool only: with S3 the shared states are other machines' too (not sampled).
        self.levels = SpoolLevels(self.local) if self.uploader is None else None
        (self.local.root / "locks").mkdir(exist_ok=True)
        self.sampler = FileLock(self.local.root / "locks" / "sampler.lock")
        self.wakeups_saved = 0
        self.accepted = 0
        self.quarantined = 0
        self.spool_bytes = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        for name, config in self.sources.items():
            if config.secret is None and self.settings.webhook_secret is None:
                self.secrets.secrets(name, config)  # make managed secrets now, not on the first delivery
                logger.warning(
                    "source %r: secret in %s (`flowhook secret show %s`)", name, self.secrets.path(name), name
                )
        # The first process on the spool forwards every batch sealed before a stop; others, what they recover.
        for ref in await self.inbox.start(ready=self.sampler.acquire()):
            (self.uploader or self.forwarder).submit(ref)  # on to S3 (if there), then Prefect
        tasks = [
            asyncio.create_task(self.forwarder.run(), name="forwarder"),
            asyncio.create_task(self._measure_spool(), name="spool-usage"),
        ]
        if self.levels is not None and self.settings.sampling.period_seconds > 0:
            sample = functools.partial(self._levels, self.levels)
            period = self.settings.sampling.period_seconds
            run = self.recorder.run(sample, period=period, covering=lambda: self.sampler.held)
            tasks.append(asyncio.create_task(run, name="sampler"))
        if self.uploader is not None:
            tasks.append(asyncio.create_task(self.uploader.run(), name="uploader"))
            tasks.append(asyncio.create_task(self._watch_remote(), name="remote-waiting"))
        if isinstance(self.sink, PrefectEventSink):  # warn about types Prefect has no deployment for, meanwhile
            check = warn_undeployed(self.settings.prefect_api_url, self.intake.catalog.names)
            tasks.append(asyncio.create_task(check, name="deployment-check"))
        try:
            yield
        finally:
            await self.inbox.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain(), timeout=5.0)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(OSError):
                self.recorder.flush()
            self.sampler.release()
            if isinstance(self.sink, PrefectEventSink):
                await self.sink.aclose()

    async def _levels(self, levels: SpoolLevels) -> Levels:
        """This process's open batches, and the shared folders while it holds the sampler lock (taken over from
        a process that died)."""
        open_batches = self.inbox.open_batches()  # on the loop: the inbox changes there
        return await asyncio.to_thread(levels, open_batches, folders=self.sampler.acquire())

    def _recovered(self, ref: BatchRef) -> None:
        """A dead process's open batch, sealed here: wake a run for it (that process may have died deciding)."""
        if self.levels is not None:
            self.levels.note(ref.batch_id, ref.count)
        (self.uploader or self.forwarder).submit(ref)

    def _sealed(self, ref: BatchRef) -> None:
        """A batch was sealed on this disk: upload it first if the spool is elsewhere, else see whether to wake."""
        if self.levels is not None:
            self.levels.note(ref.batch_id, ref.count)
        if self.uploader is not None:
            self.uploader.submit(ref)
        elif self._wakes(ref):
            self.forwarder.submit(ref)

    async def _uploaded(self, ref: BatchRef) -> None:
        """A batch is in the shared spool: only now may Prefect hear of it."""
        try:
            wake = await asyncio.to_thread(self._wakes, ref)
        except OSError as exc:  # S3 went away again: a wake-up too many costs less than waiting for the sweeper
            logger.warning("cannot see the runs awake for %s (%s); waking one", ref.event_type, exc)
            wake = True
        if wake:
            self.forwarder.submit(ref)

    def _wakes(self, ref: BatchRef) -> bool:
        """Whether to wake a worker run for the batch: not if one is awake for its type or already being woken.

        Either way that run takes this batch too (runs stay awake for their type's next batches), and
        a flow run costs seconds of CPU to start. A wake-up is trusted for `wake_lost_seconds`: a batch
        unclaimed for longer (its action failed, or its run crashed before it started: Prefect on SQLite
        answers 503 under load) no longer holds back the next one, whose run then takes both.
        """
        if self._will_wake(ref.event_type, besides=ref.batch_id):
            return True
        self.wakeups_saved += 1
        return False

    def _will_wake(self, event_type: str, *, besides: str | None = None) -> bool:
        """Whether a batch of the type sealed now wakes a run: none is awake, and no other batch (`besides` this
        one) waits for a run woken less than `wake_lost_seconds` ago. The inbox seals such a batch at once."""
        if self.settings.drain.idle_seconds <= 0:
            return True  # runs never stay awake: every batch wakes its own
        return not self._awake(event_type) and not self._woken_for(event_type, besides=besides)

    def _waiting(self, event_type: str) -> bool:
        """Whether a run of the type is being woken: an earlier batch waits for it (woken less than
        `wake_lost_seconds` ago) and no run is awake. The inbox holds the next batch open meanwhile; an awake run
        takes each sealed batch at its next step instead, so then nothing is held. With the spool on S3: as
        last seen (the inbox asks every tick; S3 is listed twice a second by `_watch_remote`)."""
        if self.uploader is not None:
            return event_type in self._remote_waiting or bool(self.local.waiting(event_type))
        return not self._awake(event_type) and self._woken_for(event_type)

    def _awake(self, event_type: str) -> bool:
        """Whether a run of the type holds a fresh lease."""
        return self.spool.has_lease(event_type, fresh_within=self.settings.drain.lease_seconds)

    def _woken_for(self, event_type: str, *, besides: str | None = None) -> bool:
        """Whether a batch of the type (other than `besides`) waits for a run woken less than `wake_lost_seconds`
        ago."""
        waiting = self.spool.waiting(event_type, younger_than=self.settings.drain.wake_lost_seconds)
        return any(batch_id != besides for batch_id in waiting)

    async def _watch_remote(self, every: float = 0.5) -> None:
        while True:
            await asyncio.sleep(every)
            for event_type in list(self.inbox.open_counts()):
                try:
                    waits = await asyncio.to_thread(
                        functools.partial(
                            self.spool.waiting, event_type, younger_than=self.settings.drain.wake_lost_seconds
                        )
                    )
                except OSError:
                    continue  # S3 unreachable: keep what was last seen
                if waits:
                    self._remote_waiting.add(event_type)
                else:
                    self._remote_waiting.discard(event_type)

    async def _drain(self) -> None:
        while (self.uploader is not None and not self.uploader.idle) or not self.forwarder.idle:
            await asyncio.sleep(0.05)

    async def _measure_spool(self) -> None:
        folders = [self.local.root / state.value for state in (State.OPEN, State.READY, State.SENT, State.CLAIMED)]
        while True:
            self.spool_bytes = await asyncio.to_thread(spool_bytes, folders)
            await asyncio.sleep(1.0)
