"""Train the fraud probability model offline and save it as a versioned artifact.

    python scripts/train_model.py                       # the bundled sample, split by time
    python scripts/train_model.py --train gen.csv --test data/paysim/sample.csv --test-steps 7-8

The split is by time, never at random: the model learns from earlier steps and is judged on
later ones, as it will be used. It prints the model's precision, recall, F1 and area under the
precision-recall curve on the held-out rows, next to the rule-based score alone and the engine's
combined score, and writes all of it into the artifact's card.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier

from udfs.engine_config import EngineConfig
from udfs.fraud_model import (
    ARTIFACT_FORMAT,
    DEFAULT_MODEL_PATH,
    DEFAULT_SCORED_TYPES,
    FEATURES,
    FraudModel,
    content_version,
    feature_matrix,
)
from udfs.metrics import classification_metrics
from udfs.scoring import risk_scores, rule_scores

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT / "data" / "paysim" / "paysim_head_29999_steps1-8.csv"
# Steps 1 to 6 of the bundled sample hold 66 of its 84 frauds; 7 and 8 are left for judging.
DEFAULT_TRAIN_STEPS = "1-6"
DEFAULT_TEST_STEPS = "7-8"

# Shallow trees and a modest learning rate: PaySim's fraud signal is a few balance patterns,
# and deeper trees only memorise the handful of odd frauds.
TREES = 200
DEPTH = 3
LEARNING_RATE = 0.1
SUBSAMPLE = 0.8
SEED = 7
# The exported trees must give sklearn's own probabilities to rounding error.
EXPORT_TOLERANCE = 1e-9


def steps_range(text):
    """``"3-8"`` or ``"5"`` as an inclusive (first, last) pair."""
    first, _, last = text.partition("-")
    try:
        bounds = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"steps must look like 1-6 or 7; got {text!r}") from None
    if bounds[0] > bounds[1]:
        raise argparse.ArgumentTypeError(f"steps must run forwards; got {text!r}")
    return bounds


def read_rows(paths, steps):
    """The rows of the CSV files ``paths`` whose step lies in ``steps`` (inclusive)."""
    frames = [pd.read_csv(path) for path in paths]
    data = pd.concat(frames, ignore_index=True)
    in_range = data["step"].between(*steps)
    if not in_range.any():
        raise ValueError(f"no row of {', '.join(map(str, paths))} lies in steps {steps}")
    return data[in_range].reset_index(drop=True)


def as_columns(frame):
    columns = {name: frame[name].to_numpy() for name in frame.columns}
    columns["type"] = columns["type"].astype(str)
    columns["nameDest"] = columns["nameDest"].astype(str)
    return columns


def export(classifier, card):
    """The fitted sklearn ensemble as a :class:`FraudModel` with flat, self-looping leaves."""
    features, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
    offset = 0
    for (estimator,) in classifier.estimators_:
        tree = estimator.tree_
        leaf = tree.children_left == -1
        node_ids = np.arange(tree.node_count)
        roots.append(offset)
        features.append(np.where(leaf, 0, tree.feature))
        thresholds.append(np.where(leaf, 0.0, tree.threshold))
        lefts.append(offset + np.where(leaf, node_ids, tree.children_left))
        rights.append(offset + np.where(leaf, node_ids, tree.children_right))
        values.append(tree.value[:, 0, 0])
        offset += tree.node_count

    prior = classifier.init_.class_prior_[1]
    model = FraudModel(
        feature=np.concatenate(features).astype(np.int32),
        threshold=np.concatenate(thresholds),
        left=np.concatenate(lefts).astype(np.int32),
        right=np.concatenate(rights).astype(np.int32),
        value=np.concatenate(values),
        roots=np.array(roots, dtype=np.int32),
        depth=max(estimator.get_depth() for (estimator,) in classifier.estimators_),
        initial_log_odds=float(np.log(prior / (1.0 - prior))),
        learning_rate=classifier.learning_rate,
        card={},
    )
    return dataclasses.replace(model, card={**card, "version": content_version(model)})


def evaluate(model, frame, config):
    """Metrics on ``frame`` of the model alone, the rules alone and the combined risk score."""
    columns = as_columns(frame)
    labels = columns["isFraud"]
    probability = model.predict(columns)
    rules, fired = rule_scores(columns)
    combined = risk_scores(np.zeros(len(labels)), probability, rules, config)
    threshold = config.flag_threshold
    return {
        "rows": len(labels),
        "frauds": int(labels.sum()),
        "model": classification_metrics(labels, probability, threshold),
        "account_drained_rule": classification_metrics(labels, fired["account_drained"], 1.0),
        "combined": classification_metrics(labels, combined, threshold),
    }


def describe(metrics):
    """One line of metrics, with n/a for those that are undefined."""
    return " ".join(
        f"{name} " + ("n/a" if metrics[name] is None else f"{metrics[name]:.3f}")
        for name in ("precision", "recall", "f1", "auprc")
    )


def file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", nargs="+", default=[DEFAULT_DATA], type=Path)
    parser.add_argument("--train-steps", type=steps_range, default=DEFAULT_TRAIN_STEPS)
    parser.add_argument("--test", nargs="+", default=None, type=Path, help="default: --train")
    parser.add_argument("--test-steps", type=steps_range, default=DEFAULT_TEST_STEPS)
    parser.add_argument("--output", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--trees", type=int, default=TREES)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    test_paths = args.test or args.train

    training = read_rows(args.train, args.train_steps)
    testing = read_rows(test_paths, args.test_steps)
    if args.test is None and args.train_steps[1] >= args.test_steps[0]:
        parser.error("with the same file for training and testing, --test-steps must come later")

    classifier = GradientBoostingClassifier(
        n_estimators=args.trees,
        max_depth=DEPTH,
        learning_rate=LEARNING_RATE,
        subsample=SUBSAMPLE,
        random_state=SEED,
    )
    training = training[training["type"].isin(DEFAULT_SCORED_TYPES)].reset_index(drop=True)
    training_features = feature_matrix(as_columns(training))
    classifier.fit(training_features, training["isFraud"].to_numpy())

    card = {
        "format": ARTIFACT_FORMAT,
        "features": list(FEATURES),
        "scored_types": list(DEFAULT_SCORED_TYPES),
        "trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "learner": {
            "kind": "sklearn GradientBoostingClassifier",
            "trees": args.trees,
            "depth": DEPTH,
            "learning_rate": LEARNING_RATE,
            "subsample": SUBSAMPLE,
            "seed": SEED,
        },
        "training": {
            "files": {path.name: file_digest(path) for path in args.train},
            "steps": list(args.train_steps),
            "rows": len(training),
            "frauds": int(training["isFraud"].sum()),
        },
    }
    model = export(classifier, card)
    exported = model.predict(as_columns(training))
    drift = np.abs(exported - classifier.predict_proba(training_features)[:, 1]).max()
    if drift > EXPORT_TOLERANCE:
        raise RuntimeError(f"exported trees differ from sklearn's by {drift:g}; not saved")

    config = EngineConfig()
    held_out = evaluate(model, testing, config)
    held_out["files"] = {path.name: file_digest(path) for path in test_paths}
    held_out["steps"] = list(args.test_steps)
    held_out["flag_threshold"] = config.flag_threshold
    model = dataclasses.replace(model, card={**model.card, "held_out": held_out})
    model.save(args.output)
    args.output.with_suffix(".json").write_text(json.dumps(model.card, indent=2) + "\n")

    print(f"model {model.version} written to {args.output}")
    print(f"held out: {held_out['rows']:,} rows, {held_out['frauds']} frauds")
    for name in ("account_drained_rule", "model", "combined"):
        print(f"  {name:20} " + describe(held_out[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
