"""Training the fraud model offline: a time split, an exact export, a versioned artifact."""

import pytest

from scripts import train_model
from udfs.fraud_model import FraudModel


def test_training_writes_an_artifact_that_scores_like_sklearn_and_describes_itself(tmp_path):
    artifact = tmp_path / "model.npz"

    # The script refuses to save trees whose scores differ from sklearn's.
    train_model.main(["--trees", "20", "--output", str(artifact)])

    model = FraudModel.load(artifact)
    card = model.card
    assert card["training"]["steps"] == [1, 6]
    assert card["held_out"]["steps"] == [7, 8]
    assert card["held_out"]["frauds"] == 18  # steps 7 and 8 of the bundled sample
    assert card["learner"]["trees"] == 20
    assert (tmp_path / "model.json").is_file()
    assert model.version != FraudModel.load(train_model.DEFAULT_MODEL_PATH).version


def test_the_same_data_and_settings_give_the_same_version(tmp_path):
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"

    train_model.main(["--trees", "10", "--output", str(first)])
    train_model.main(["--trees", "10", "--output", str(second)])

    assert FraudModel.load(first).version == FraudModel.load(second).version


def test_a_test_range_that_overlaps_training_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        train_model.main(["--test-steps", "5-8", "--output", str(tmp_path / "m.npz")])
