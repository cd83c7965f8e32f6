"""The worker side: what a flow run does to the batches of one event type, with no Prefect in sight.

`drain.drain` is the use case a worker flow calls: take the batch that woke the run and, while awake, every
batch of its type that arrives, one `steps.process_step` at a time (claim, handle, store, retry the failed,
complete). Contract: exactly one run claims a batch; a batch is completed only after its events are committed;
every part is safe to repeat, so a step that failed on I/O is simply run again. Around it: `sweeper` launches
the batches a lost trigger or a dead run left behind, `dead_letters` puts failed events back into the spool,
`watchdog` judges the trigger path by its heartbeat, `summary` and `run_names` say in the Prefect UI what a
run did and is for, `config` holds the worker's settings. The Prefect tasks in `tasks/` add retries and tags.
"""
