"""Settings of the drift and scoring engine, with their defaults in one place.

A bank tunes these per deployment; every window record and alert carries
:attr:`EngineConfig.version`, a digest of the settings that produced it, so that an alert can
be traced to the exact configuration behind it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, fields

from udfs.drift_window import DriftConfig

# Windows of 500 against a reference of 5000 follow the design the engine replaces; the
# statistics' null calibration and the benchmarks are sized for them.
DEFAULT_WINDOW_SIZE = 500
DEFAULT_REFERENCE_SIZE = 5000
# A quiet key (DEBIT sees well under 1% of traffic) would fill a window of 500 only after
# minutes; past this many seconds its partial window is evaluated as it is.
DEFAULT_WINDOW_TIME_BOUND_SECONDS = 2.0
# Below this many rows a partial window is scored but gets no drift verdict: the tests have
# too little power to say anything and would only add noise to the correction.
DEFAULT_MIN_VERDICT_ROWS = 50

# Rebuilding a reference's summary (sorted values, bins, simulated nulls) costs several times
# a window's statistics; while the reference follows the traffic it is rebuilt once every this
# many windows that entered it, so a verdict may use a summary up to four windows old, of a
# reference ten windows long.
DEFAULT_SUMMARY_REFRESH_WINDOWS = 5

# Keys are a transaction type, or with shards ``TYPE/shard``.
SHARD_SEPARATOR = "/"

APPEND = "append"
APPEND_UNDRIFTED = "append_undrifted"
FROZEN = "frozen"
REFERENCE_POLICIES = (APPEND, APPEND_UNDRIFTED, FROZEN)

# The model carries the decision and the rules confirm it: at the default threshold a model
# probability of 0.84 flags on its own, and a drained account needs only 0.34 from the model.
# Drift alone can never flag (0.1): a shifted window says the traffic changed, not which
# transaction is fraud, but it tips a borderline transaction in the tails of a drifted window.
DEFAULT_DRIFT_WEIGHT = 0.1
DEFAULT_MODEL_WEIGHT = 0.6
DEFAULT_RULE_WEIGHT = 0.3
DEFAULT_FLAG_THRESHOLD = 0.5
# The drift term counts a transaction only in the outer 10% of its key's reference (tail score
# 0.9 and above), rising linearly to 1 at the reference's extremes; closer to the middle a value
# is ordinary whatever the window did.
DEFAULT_TAIL_START = 0.9


@dataclass(frozen=True)
class EngineConfig:
    """How windows are cut, references kept and transactions scored.

    Parameters
    ----------
    window_size
        Transactions per count window of one key.
    window_time_bound_seconds
        Longest time a key's partial window waits for more transactions before it is
        evaluated as it is (processing time).
    min_verdict_rows
        Smallest window that gets a drift verdict.
    reference_size
        Transactions kept per key as its reference; no verdict before it is full (warm-up).
    reference_policy
        Which windows enter the reference once it is full: ``"append"`` every window (the
        reference follows the traffic, and a lasting change stops being drift after about
        ``reference_size / window_size`` windows), ``"append_undrifted"`` only windows that did
        not drift (a change stays visible until someone acts), ``"frozen"`` none.
    summary_refresh_windows
        How many windows enter the reference before its summary is rebuilt; 1 rebuilds it
        after every window.
    drift_weight, model_weight, rule_weight
        Weights of the three terms of the risk score.
    flag_threshold
        Risk score from which a transaction is flagged.
    flag_thresholds
        Key to its own flag threshold, overriding ``flag_threshold`` for that key.
    tail_start
        Tail score from which a transaction counts in the drift term.
    shards
        Shards per transaction type: keys become ``TYPE/shard`` so that the job can use more
        parallelism than there are types. 1 keys by type alone.
    drift
        How windows are compared with the reference.
    """

    window_size: int = DEFAULT_WINDOW_SIZE
    window_time_bound_seconds: float = DEFAULT_WINDOW_TIME_BOUND_SECONDS
    min_verdict_rows: int = DEFAULT_MIN_VERDICT_ROWS
    reference_size: int = DEFAULT_REFERENCE_SIZE
    reference_policy: str = APPEND
    summary_refresh_windows: int = DEFAULT_SUMMARY_REFRESH_WINDOWS
    drift_weight: float = DEFAULT_DRIFT_WEIGHT
    model_weight: float = DEFAULT_MODEL_WEIGHT
    rule_weight: float = DEFAULT_RULE_WEIGHT
    flag_threshold: float = DEFAULT_FLAG_THRESHOLD
    flag_thresholds: dict = field(default_factory=dict)
    tail_start: float = DEFAULT_TAIL_START
    shards: int = 1
    drift: DriftConfig = field(default_factory=DriftConfig)

    def __post_init__(self):
        for name in (
            "window_size",
            "reference_size",
            "min_verdict_rows",
            "shards",
            "summary_refresh_windows",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.min_verdict_rows > self.window_size:
            raise ValueError(
                f"min_verdict_rows must not exceed window_size ({self.window_size}); "
                f"got {self.min_verdict_rows}"
            )
        if not self.window_time_bound_seconds > 0:
            raise ValueError(
                "window_time_bound_seconds must be a positive number of seconds; "
                f"got {self.window_time_bound_seconds!r}"
            )
        if self.reference_policy not in REFERENCE_POLICIES:
            raise ValueError(
                f"reference_policy must be one of {', '.join(REFERENCE_POLICIES)}; "
                f"got {self.reference_policy!r}"
            )
        for name in ("drift_weight", "model_weight", "rule_weight", "tail_start"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]; got {value!r}")
        for key, threshold in {
            "flag_threshold": self.flag_threshold,
            **self.flag_thresholds,
        }.items():
            if not 0.0 < threshold <= 1.0:
                raise ValueError(
                    f"flag threshold for {key!r} must lie in (0, 1]; got {threshold!r}"
                )
        # A plain copy rather than a read-only view: the config travels to Flink's workers
        # pickled, and a mappingproxy cannot be pickled.
        object.__setattr__(self, "flag_thresholds", dict(self.flag_thresholds))

    def flag_threshold_for(self, key):
        """The flag threshold of ``key``: its own if configured, else the global one."""
        type_name = type_of_key(key)
        return self.flag_thresholds.get(
            key, self.flag_thresholds.get(type_name, self.flag_threshold)
        )

    @functools.cached_property
    def version(self):
        """A short digest of every setting, stable across runs and machines."""
        settings = {item.name: getattr(self, item.name) for item in fields(self)}
        settings["drift"] = repr(self.drift)
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def type_of_key(key):
    """The transaction type a key belongs to: the key itself, or the part before its shard."""
    return key.split(SHARD_SEPARATOR, 1)[0]
