"""The fraud probability model: its features, its artifact and its vectorized scoring.

The model is a gradient-boosted ensemble of shallow regression trees, trained offline by
``scripts/train_model.py`` and saved as a versioned artifact: a numpy ``.npz`` archive holding
the trees as flat arrays and a JSON card with the version, the features and how the model was
trained and evaluated. Scoring needs numpy alone, so the Flink workers carry no training library
and an artifact reads the same whatever library version trained it.

:meth:`FraudModel.predict` scores a whole window in one call: every row walks every tree at
once, one tree level per step, so the cost is ``depth`` vectorized gathers over a
``rows x trees`` array of node indices.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ARTIFACT_FORMAT = "frauddrift-gbt/1"
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "fraud_model.npz"

# Features the model sees, computed from a transaction's own fields. The balance errors carry
# most of the signal: published work on PaySim finds that without them boosted trees fall from
# an area under the precision-recall curve near 1 to about 0.4.
FEATURES = (
    "is_transfer",
    "is_cash_out",
    "log_amount",
    "log_old_origin_balance",
    "log_new_origin_balance",
    "log_old_destination_balance",
    "log_new_destination_balance",
    "origin_balance_error",
    "destination_balance_error",
    "share_of_origin_balance",
    "origin_emptied",
    "destination_is_merchant",
)
# PaySim's fraud happens only in these types; the model scores them and gives the rest 0, rather
# than guess about traffic it never saw a fraud in.
DEFAULT_SCORED_TYPES = ("TRANSFER", "CASH_OUT")
# Keeps the ratios finite for empty accounts: a currency unit is nothing next to PaySim amounts.
RATIO_FLOOR = 1.0

_ARRAY_NAMES = ("feature", "threshold", "left", "right", "value", "roots")


class ModelArtifactError(ValueError):
    """An artifact that is missing, unreadable or not a fraud model of this format."""


def feature_matrix(columns):
    """The model's features for a batch of transactions, shape ``(rows, len(FEATURES))``.

    ``columns`` maps PaySim field names to numpy arrays (see
    :class:`udfs.transactions.TransactionBatch`).
    """
    types = columns["type"]
    amount = columns["amount"]
    old_origin = columns["oldbalanceOrg"]
    new_origin = columns["newbalanceOrig"]
    old_destination = columns["oldbalanceDest"]
    new_destination = columns["newbalanceDest"]
    destination_is_merchant = np.char.startswith(columns["nameDest"].astype(str), "M")

    scale = np.maximum(amount, RATIO_FLOOR)
    return np.column_stack(
        [
            types == "TRANSFER",
            types == "CASH_OUT",
            np.log1p(amount),
            np.log1p(old_origin),
            np.log1p(new_origin),
            np.log1p(old_destination),
            np.log1p(new_destination),
            # Money that left the origin without the balance showing it, relative to the amount.
            (old_origin - amount - new_origin) / scale,
            # Money that should have reached the destination without its balance showing it.
            (old_destination + amount - new_destination) / scale,
            amount / np.maximum(old_origin, RATIO_FLOOR),
            (old_origin > 0) & (new_origin == 0),
            destination_is_merchant,
        ]
    ).astype(np.float64)


@dataclass(frozen=True)
class FraudModel:
    """Boosted trees stored as flat arrays, with the card that describes them.

    Node ``n`` tests ``x[feature[n]] <= threshold[n]`` and goes to ``left[n]`` or ``right[n]``;
    a leaf points to itself on both sides, so a row that reached one stays there while the
    deeper trees finish. ``roots`` holds each tree's first node. The log-odds of fraud are
    ``initial_log_odds + learning_rate * sum of the leaves' values``.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int
    initial_log_odds: float
    learning_rate: float
    card: dict

    @property
    def version(self):
        return self.card["version"]

    @property
    def scored_types(self):
        return tuple(self.card.get("scored_types", DEFAULT_SCORED_TYPES))

    def predict(self, columns):
        """Fraud probability of every transaction of a batch, in one vectorized pass; 0 for a
        transaction whose type the model does not score."""
        scored = np.isin(columns["type"], self.scored_types)
        probability = np.zeros(len(scored))
        if scored.any():
            subset = {name: values[scored] for name, values in columns.items()}
            probability[scored] = self._probability(feature_matrix(subset))
        return probability

    @functools.cached_property
    def _walk_arrays(self):
        """Node features, children side by side and roots as 32-bit indices, made once."""
        children = np.column_stack([self.left, self.right]).ravel().astype(np.int32)
        return self.feature.astype(np.int32), children, self.roots.astype(np.int32)

    def _probability(self, features):
        # Gathers from flat arrays with 32-bit indices (np.take is the fastest gather numpy
        # has): a row's feature is at row * width + feature, and a node's two children sit side
        # by side, left at 2n and right at 2n + 1.
        feature, children, roots = self._walk_arrays
        row_count, width = features.shape
        values = features.ravel()
        row_starts = (np.arange(row_count, dtype=np.int32) * width)[:, None]
        nodes = np.repeat(roots[None, :], row_count, axis=0)
        for _ in range(self.depth):
            goes_right = np.take(values, row_starts + np.take(feature, nodes)) > np.take(
                self.threshold, nodes
            )
            nodes = np.take(children, 2 * nodes + goes_right)
        leaf_sum = np.take(self.value, nodes).sum(axis=1)
        log_odds = self.initial_log_odds + self.learning_rate * leaf_sum
        return 1.0 / (1.0 + np.exp(-log_odds))

    # --- the artifact --------------------------------------------------------------------

    def save(self, path):
        """Write the artifact to ``path`` (an ``.npz`` file)."""
        arrays = {name: getattr(self, name) for name in _ARRAY_NAMES}
        scalars = np.array([self.depth, self.initial_log_odds, self.learning_rate])
        card = json.dumps(self.card, sort_keys=True)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez_compressed(handle, scalars=scalars, card=np.array(card), **arrays)

    @classmethod
    def load(cls, path):
        """Read an artifact; :class:`ModelArtifactError` names the file when it cannot."""
        path = Path(path)
        if not path.is_file():
            raise ModelArtifactError(
                f"fraud model artifact {path} does not exist; train one with "
                "scripts/train_model.py or pass another with --model"
            )
        try:
            with np.load(path, allow_pickle=False) as archive:
                contents = {name: archive[name] for name in archive.files}
            card = json.loads(str(contents["card"]))
            depth, initial_log_odds, learning_rate = contents["scalars"].tolist()
            model = cls(
                **{name: contents[name] for name in _ARRAY_NAMES},
                depth=int(depth),
                initial_log_odds=float(initial_log_odds),
                learning_rate=float(learning_rate),
                card=card,
            )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise ModelArtifactError(
                f"fraud model artifact {path} is not readable: {type(error).__name__}: {error}"
            ) from error
        model.check(path)
        return model

    def check(self, path):
        """Raise :class:`ModelArtifactError` unless the artifact is whole and of this format."""
        if self.card.get("format") != ARTIFACT_FORMAT:
            raise ModelArtifactError(
                f"fraud model artifact {path} has format {self.card.get('format')!r}; "
                f"this engine reads {ARTIFACT_FORMAT!r}"
            )
        if tuple(self.card.get("features", ())) != FEATURES:
            raise ModelArtifactError(
                f"fraud model artifact {path} was trained on features "
                f"{self.card.get('features')}; this engine computes {list(FEATURES)}"
            )
        if self.card.get("version") != content_version(self):
            raise ModelArtifactError(
                f"fraud model artifact {path} does not match its version "
                f"{self.card.get('version')!r}: its trees were changed after it was saved"
            )
        node_count = len(self.feature)
        within = all(
            (indices >= 0).all() and (indices < node_count).all()
            for indices in (self.left, self.right, self.roots)
        )
        if not within or not ((self.feature >= 0) & (self.feature < len(FEATURES))).all():
            raise ModelArtifactError(f"fraud model artifact {path} has trees that point nowhere")


def content_version(model):
    """The model's version: its family and a digest of its trees, so that equal versions mean
    equal scores and a changed tree cannot keep its old version."""
    digest = hashlib.sha256()
    for name in _ARRAY_NAMES:
        buffer = io.BytesIO()
        np.save(buffer, getattr(model, name), allow_pickle=False)
        digest.update(buffer.getvalue())
    digest.update(repr((model.depth, model.initial_log_odds, model.learning_rate)).encode())
    return f"gbt-{digest.hexdigest()[:12]}"
