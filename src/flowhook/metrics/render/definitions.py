"""What each figure of the report means, defined once for every renderer: a gloss for the terminal's legend and a
sentence for the Markdown artifact and the JSON."""

from __future__ import annotations

from typing import NamedTuple


class Definition(NamedTuple):
    """A term of the report, a few words saying what it is, and the sentence that defines it."""

    term: str
    gloss: str
    meaning: str


DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        "N, M",
        "events received, stored in the window",
        "Arrivals (events received in the window) and completions (events stored in it, failed ones included).",
    ),
    Definition(
        "T",
        "the window's length; every rate is a count over T",
        "The window's length; every rate below is a count over T. Buckets cut T into equal slices.",
    ),
    Definition(
        "λ",
        "arrival rate N/T (peak λ: the busiest bucket's)",
        "Arrival rate N/T from the `received` times; peak λ is the busiest bucket's.",
    ),
    Definition("μ", "processing rate M/T", "Processing rate M/T: completions per second over the window."),
    Definition(
        "capacity",
        "events stored per second a worker was busy",
        "μ as capacity: events stored per second a worker was busy (claimed batches handled → stored).",
    ),
    Definition("θ", "throughput min(λ, μ)", "Throughput min(λ, μ), as the seed defines it."),
    Definition(
        "τ",
        "1/θ, seconds per event: the seed's model, not a measurement",
        "The seed's model 1/θ: seconds per event at throughput θ. A model, not a measurement.",
    ),
    Definition(
        "ρ",
        "utilisation λ/capacity; over 1, one worker falls behind",
        "Utilisation λ/capacity: the share of one worker's time the arrivals need; above 1 it cannot keep up.",
    ),
    Definition(
        "p50/p95/p99/max",
        "measured latency percentiles",
        "Measured latency percentiles of the events stored in the window, per stage (linear interp.).",
    ),
    Definition(
        "backlog",
        "events received, not yet stored",
        "Events received but not stored (the spool's in-flight ones included), at a bucket's end.",
    ),
    Definition(
        "Little's law",
        "backlog L sampled from the spool = λ × W from timestamps",
        "The spool's backlog L, sampled every 0.1 s, against λ × mean time in system W from the stored "
        "timestamps, over the time the sampler watched: two independent counts of the same event-seconds, "
        "which agree within 5% (or 3σ of sampling noise) when every event is counted once with honest times.",
    ),
    Definition(
        "stage, ρ",
        "gateway, worker/<type>, store: load ÷ capacity",
        "Each stage's capacity from the window's own figures (gateway: deliveries per CPU-second; a worker: events "
        "per second of steps; the store: every type's steps, one writer at a time) and its utilisation ρ; the "
        "bottleneck is the stage with the highest ρ, the first to saturate.",
    ),
    Definition(
        "forecast",
        "M/M/c from capacity and λ, plus a fixed delay d",
        "M/M/c from capacity and λ: the rate where latency blows up, p99 at λ, workers for the p99 target.",
    ),
)
