"""The scenario generator, specified against the PaySim sample it is calibrated on.

Calibration checks run on one stationary stream; each scenario is compared with the stationary
stream of the same seed and size, which shares its base rows.
"""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from scripts.generate import (
    CAMPAIGN_BALANCE_RANGE,
    CAMPAIGN_DRAIN_FRACTION_RANGE,
    CENTS_PER_UNIT,
    DEFAULT_CALIBRATION,
    FRAUD_TYPES,
    SCENARIOS,
    generate,
    jittered_money,
    load_calibration,
    main,
    truth_path,
    write,
)
from udfs.transactions import FIELDS, KNOWN_TYPES, MONEY_FIELDS

SEED = 11
CALIBRATION_CHECK_ROWS = 200_000
SCENARIO_ROWS = 100_000
SMALL_ROWS = 2_000
BURST_TEST_STEP = 1_000

TYPE_SHARE_TOLERANCE = 0.01
AMOUNT_QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90)
AMOUNT_QUANTILE_RELATIVE_TOLERANCE = 0.10
ZERO_ORIGIN_BALANCE_SHARE_TOLERANCE = 0.02
DRAINED_FRAUD_SHARE_TOLERANCE = 0.05
# About four binomial standard deviations of the fraud share at 200,000 rows.
FRAUD_RATE_TOLERANCE = 0.0005
# Shares of balance arithmetic per type: 200,000 draws estimate them to well under this.
BALANCE_RULE_SHARE_TOLERANCE = 0.02
# A share a scenario sets, estimated on its few thousand affected rows.
SCENARIO_SHARE_TOLERANCE = 0.03
# The ratio of two medians, each from several thousand TRANSFER rows.
MEDIAN_RATIO_RELATIVE_TOLERANCE = 0.10
# Log-scale spread of the factors the balance arithmetic is checked under: wider than the
# generator's own jitter, so that rounding is exercised hard.
STRESS_SCALE_LOG_SD = 1.0


# --- Shared streams ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibration():
    return load_calibration(DEFAULT_CALIBRATION)


@pytest.fixture(scope="module")
def sample():
    return pd.read_csv(DEFAULT_CALIBRATION)


@pytest.fixture(scope="module")
def large_stationary(calibration):
    frame, _ = generate("stationary", CALIBRATION_CHECK_ROWS, SEED, calibration=calibration)
    return frame


@pytest.fixture(scope="module")
def runs(calibration):
    """Each scenario's frame and truth at SCENARIO_ROWS rows and SEED, generated once."""
    cache = {}

    def run(scenario):
        if scenario not in cache:
            cache[scenario] = generate(scenario, SCENARIO_ROWS, SEED, calibration=calibration)
        return cache[scenario]

    return run


def cents(frame, name):
    return np.rint(frame[name].to_numpy() * CENTS_PER_UNIT).astype(np.int64)


def types(frame):
    return frame["type"].astype(str).to_numpy()


def drained(frame):
    return (cents(frame, "amount") == cents(frame, "oldbalanceOrg")) & (
        cents(frame, "newbalanceOrig") == 0
    )


def balance_rule_shares(frame):
    """Per type, the share of rows whose origin loses, or gains, exactly the amount."""
    amount, old, new = (cents(frame, name) for name in MONEY_FIELDS[:3])
    rules = pd.DataFrame(
        {"type": types(frame), "debit": new == old - amount, "credit": new == old + amount}
    )
    return rules.groupby("type").mean()


# --- Calibration ------------------------------------------------------------------------------


def test_type_shares_match_the_calibration(large_stationary, sample):
    generated = pd.Series(types(large_stationary)).value_counts(normalize=True)
    expected = sample["type"].value_counts(normalize=True)

    for name in KNOWN_TYPES:
        assert abs(generated.get(name, 0.0) - expected.get(name, 0.0)) <= TYPE_SHARE_TOLERANCE


@pytest.mark.parametrize("transaction_type", KNOWN_TYPES)
def test_amount_quantiles_of_each_type_match_the_calibration(
    large_stationary, sample, transaction_type
):
    generated = large_stationary["amount"][types(large_stationary) == transaction_type]
    expected = sample["amount"][sample["type"] == transaction_type]

    relative_error = (
        generated.quantile(AMOUNT_QUANTILES).to_numpy()
        / expected.quantile(AMOUNT_QUANTILES).to_numpy()
        - 1.0
    )
    assert np.abs(relative_error).max() <= AMOUNT_QUANTILE_RELATIVE_TOLERANCE


def test_share_of_empty_origin_accounts_per_type_matches_the_calibration(large_stationary, sample):
    generated = (large_stationary["oldbalanceOrg"] == 0).groupby(types(large_stationary)).mean()
    expected = (sample["oldbalanceOrg"] == 0).groupby(sample["type"]).mean()

    for name in KNOWN_TYPES:
        assert abs(generated[name] - expected[name]) <= ZERO_ORIGIN_BALANCE_SHARE_TOLERANCE


def test_frauds_are_only_transfers_and_cash_outs_at_the_calibration_rate(large_stationary, sample):
    frauds = large_stationary["isFraud"] == 1

    assert set(types(large_stationary)[frauds]) == set(FRAUD_TYPES)
    assert abs(frauds.mean() - sample["isFraud"].mean()) <= FRAUD_RATE_TOLERANCE


def test_frauds_empty_the_origin_as_often_as_in_the_calibration(large_stationary, sample):
    generated = drained(large_stationary)[large_stationary["isFraud"] == 1].mean()
    expected = drained(sample)[sample["isFraud"] == 1].mean()

    assert abs(generated - expected) <= DRAINED_FRAUD_SHARE_TOLERANCE


def test_balance_arithmetic_survives_any_scale_to_the_cent(calibration):
    generator = np.random.default_rng(SEED)
    scale = generator.lognormal(0.0, STRESS_SCALE_LOG_SD, len(calibration))
    template = calibration.money
    scaled = jittered_money(template, scale)
    amount = scaled["amount"]

    for old_name, new_name in (
        ("oldbalanceOrg", "newbalanceOrig"),
        ("oldbalanceDest", "newbalanceDest"),
    ):
        old, new = template[old_name], template[new_name]
        took = new == old - template["amount"]
        gave = new == old + template["amount"]
        assert took.any() and gave.any()
        assert (scaled[new_name][took] == scaled[old_name][took] - amount[took]).all()
        assert (scaled[new_name][gave] == scaled[old_name][gave] + amount[gave]).all()
    for name in MONEY_FIELDS:
        assert (scaled[name][template[name] == 0] == 0).all()
    was_drained = (template["amount"] == template["oldbalanceOrg"]) & (
        template["newbalanceOrig"] == 0
    )
    assert (amount[was_drained] == scaled["oldbalanceOrg"][was_drained]).all()
    assert (scaled["newbalanceOrig"][was_drained] == 0).all()


def test_a_balance_off_by_a_cent_stays_off_by_that_cent(calibration):
    generator = np.random.default_rng(SEED)
    scale = generator.lognormal(0.0, STRESS_SCALE_LOG_SD, len(calibration))
    template = calibration.money
    scaled = jittered_money(template, scale)
    offset = template["newbalanceOrig"] - (template["oldbalanceOrg"] + template["amount"])
    off_by_a_cent = (np.abs(offset) == 1) & (template["newbalanceOrig"] > 0)
    scaled_offset = scaled["newbalanceOrig"] - (scaled["oldbalanceOrg"] + scaled["amount"])

    assert off_by_a_cent.any()
    assert (scaled_offset[off_by_a_cent] == offset[off_by_a_cent]).all()


def test_generated_rows_follow_each_type_balance_arithmetic_as_often(large_stationary, sample):
    generated = balance_rule_shares(large_stationary)
    expected = balance_rule_shares(sample)

    assert (generated - expected).abs().to_numpy().max() <= BALANCE_RULE_SHARE_TOLERANCE


def test_money_is_whole_cents_and_never_negative(large_stationary):
    for name in MONEY_FIELDS:
        values = large_stationary[name].to_numpy()
        assert (values >= 0).all()
        assert (np.rint(values * CENTS_PER_UNIT) / CENTS_PER_UNIT == values).all()


def test_accounts_are_named_the_paysim_way(large_stationary, sample, calibration):
    origins = large_stationary["nameOrig"]
    destinations = large_stationary["nameDest"]
    generated_kinds = destinations.str[0].groupby(types(large_stationary)).unique()
    expected_kinds = sample["nameDest"].str[0].groupby(sample["type"]).unique()
    customer_destinations = destinations[destinations.str.startswith("C")]
    _, truth = generate("stationary", SMALL_ROWS, SEED, calibration=calibration)

    assert origins.str.fullmatch(r"C\d{1,10}").all()
    assert destinations.str.fullmatch(r"[CM]\d{1,10}").all()
    for name in KNOWN_TYPES:
        assert set(generated_kinds[name]) == set(expected_kinds[name])
    assert customer_destinations.nunique() < len(customer_destinations) / 2
    assert truth["settings"]["customer_destination_pool_size"] < SMALL_ROWS


def test_steps_are_consecutive_blocks_of_rows_per_step(calibration):
    rows_per_step = 300
    frame, truth = generate(
        "stationary", SMALL_ROWS, SEED, calibration=calibration, rows_per_step=rows_per_step
    )

    assert truth["rows_per_step"] == rows_per_step
    assert (frame["step"].to_numpy() == 1 + np.arange(SMALL_ROWS) // rows_per_step).all()


# --- Output -----------------------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path, calibration):
    written = {}
    for label, seed in (("first", SEED), ("again", SEED), ("other", SEED + 1)):
        frame, truth = generate("sudden", SMALL_ROWS, seed, calibration=calibration)
        for suffix in (".csv", ".csv.gz"):
            output = tmp_path / label / f"run{suffix}"
            truth_file = write(frame, truth, output)
            written[label, suffix] = (output.read_bytes(), truth_file.read_bytes())

    for suffix in (".csv", ".csv.gz"):
        assert written["first", suffix] == written["again", suffix]
        assert written["first", suffix][0] != written["other", suffix][0]


def test_written_file_reads_back_as_the_frame_with_the_paysim_header(tmp_path, calibration):
    frame, truth = generate("gradual", SMALL_ROWS, SEED, calibration=calibration)
    output = tmp_path / "gradual.csv.gz"
    write(frame, truth, output)

    with gzip.open(output, "rt", encoding="utf-8") as handle:
        header = handle.readline().strip()
    read_back = pd.read_csv(output)
    assert header == ",".join(FIELDS)
    pd.testing.assert_frame_equal(read_back, frame.astype({"type": str}), check_dtype=False)
    assert json.loads((tmp_path / "gradual.truth.json").read_text()) == json.loads(
        json.dumps(truth)
    )


@pytest.mark.parametrize(
    ("output", "expected"),
    [("out/x.csv", "out/x.truth.json"), ("out/x.csv.gz", "out/x.truth.json")],
)
def test_truth_goes_beside_the_csv(output, expected):
    assert str(truth_path(output)) == expected


def test_command_line_writes_both_files_and_prints_one_summary(tmp_path, capsys):
    output = tmp_path / "sudden.csv"

    status = main(["--scenario", "sudden", "--rows", str(SMALL_ROWS), "--output", str(output)])

    summary = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    assert len(summary) == 1 and str(output) in summary[0] and "rows/s" in summary[0]
    assert json.loads((tmp_path / "sudden.truth.json").read_text())["rows"] == SMALL_ROWS


def test_command_line_lists_the_scenarios_for_an_unknown_one(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--scenario", "seasonal", "--output", str(tmp_path / "x.csv")])

    error = capsys.readouterr().err
    assert all(name in error for name in SCENARIOS)


# --- Scenarios --------------------------------------------------------------------------------


def test_stationary_has_no_change(runs):
    _, truth = runs("stationary")

    assert truth["drift_expected"] is False
    assert truth["changes"] == [] and truth["bursts"] == []


def test_sudden_campaign_is_partial_drains_in_a_new_range_only_from_the_change(runs):
    frame, truth = runs("sudden")
    base, _ = runs("stationary")
    (change,) = truth["changes"]
    change_row = change["start_row"]
    after = np.arange(SCENARIO_ROWS) >= change_row
    affected = np.isin(types(frame), FRAUD_TYPES)
    fraud = frame["isFraud"].to_numpy() == 1
    amount, old, new = (cents(frame, name) for name in MONEY_FIELDS[:3])
    low_balance, high_balance = (bound * CENTS_PER_UNIT for bound in CAMPAIGN_BALANCE_RANGE)
    low_fraction, high_fraction = CAMPAIGN_DRAIN_FRACTION_RANGE
    in_new_range = (old >= low_balance) & (old <= high_balance)
    campaign = after & affected & fraud
    # Half a cent of rounding either side of the fraction range.
    slack = 0.5 / old[campaign]

    assert truth["drift_expected"] is True
    assert change_row == SCENARIO_ROWS // 2 and change["end_row"] == change_row
    assert sorted(change["keys"]) == sorted(FRAUD_TYPES)
    assert in_new_range[campaign].all()
    assert (amount[campaign] / old[campaign] >= low_fraction - slack).all()
    assert (amount[campaign] / old[campaign] <= high_fraction + slack).all()
    assert (new[campaign] == old[campaign] - amount[campaign]).all() and (new[campaign] > 0).all()
    assert (
        cents(frame, "newbalanceDest")[campaign]
        == cents(frame, "oldbalanceDest")[campaign] + amount[campaign]
    ).all()
    assert frame["nameDest"][campaign].str.startswith("C").all()
    assert not (fraud & in_new_range & ~after).any()
    assert abs(campaign.sum() / (after & affected).sum() - 0.2) <= SCENARIO_SHARE_TOLERANCE
    pd.testing.assert_frame_equal(frame[~campaign], base[~campaign])


def test_gradual_raises_transfers_over_the_ramp_and_leaves_the_rest(runs):
    frame, truth = runs("gradual")
    base, _ = runs("stationary")
    (change,) = truth["changes"]
    start, end = change["start_row"], change["end_row"]
    factor = truth["parameters"]["gradual_factor"]
    row = np.arange(SCENARIO_ROWS)
    transfer = (types(frame) == "TRANSFER") & (frame["isFraud"].to_numpy() == 0)
    raised = frame["amount"].to_numpy() != base["amount"].to_numpy()
    ramp = (row >= start) & (row < end)
    first_half = ramp & (row < (start + end) / 2)
    second_half = ramp & ~first_half
    before_median = frame["amount"][transfer & (row < start)].median()
    after_median = frame["amount"][transfer & (row >= end)].median()

    assert change["keys"] == ["TRANSFER"] and end == start + SCENARIO_ROWS // 8
    assert not raised[~transfer].any() and not raised[row < start].any()
    assert raised[transfer & (row >= end)].all()
    assert raised[transfer & first_half].mean() < raised[transfer & second_half].mean()
    assert abs(raised[transfer & ramp].mean() - 0.5) <= SCENARIO_SHARE_TOLERANCE * 2
    assert abs(after_median / before_median / factor - 1.0) <= MEDIAN_RATIO_RELATIVE_TOLERANCE
    pd.testing.assert_frame_equal(frame[~raised], base[~raised])


def test_new_category_sends_transfers_to_merchants_only_from_the_change(runs):
    frame, truth = runs("new-category")
    base, _ = runs("stationary")
    (change,) = truth["changes"]
    after = np.arange(SCENARIO_ROWS) >= change["start_row"]
    transfer = types(frame) == "TRANSFER"
    to_merchant = frame["nameDest"].str.startswith("M").to_numpy()
    moved = frame["nameDest"].to_numpy() != base["nameDest"].to_numpy()

    assert change["keys"] == ["TRANSFER"] and change["end_row"] == change["start_row"]
    assert not (transfer & to_merchant & ~after).any()
    assert (moved == (transfer & to_merchant)).all()
    assert abs(to_merchant[transfer & after].mean() - 0.2) <= SCENARIO_SHARE_TOLERANCE
    money = list(MONEY_FIELDS)
    pd.testing.assert_frame_equal(frame[money], base[money])


def test_volume_bursts_exactly_where_the_truth_says_with_the_same_traffic(runs, calibration):
    # Steps short enough for the whole burst to fit, and normal steps to follow it.
    frame, truth = generate(
        "volume", SCENARIO_ROWS, SEED, calibration=calibration, rows_per_step=BURST_TEST_STEP
    )
    base, _ = runs("stationary")
    (burst,) = truth["bursts"]
    rows_per_step = truth["rows_per_step"]
    rows_in_step = frame["step"].value_counts().sort_index()
    burst_steps = range(burst["start_step"], burst["end_step"])
    other_steps = rows_in_step.index.difference(burst_steps)[:-1]
    row = np.arange(SCENARIO_ROWS)
    inside = (row >= burst["start_row"]) & (row < burst["end_row"])
    shares_inside = pd.Series(types(frame)[inside]).value_counts(normalize=True)
    shares_outside = pd.Series(types(frame)[~inside]).value_counts(normalize=True)

    assert truth["drift_expected"] is False and truth["changes"] == []
    assert burst["truncated"] is False
    assert burst["start_step"] == 1 + (SCENARIO_ROWS // 2) // rows_per_step
    assert (rows_in_step[list(burst_steps)] == rows_per_step * burst["factor"]).all()
    assert (rows_in_step[other_steps] == rows_per_step).all()
    assert set(frame["step"][inside]) == set(burst_steps)
    assert frame["step"].is_monotonic_increasing
    for name in KNOWN_TYPES:
        assert abs(shares_inside.get(name, 0.0) - shares_outside.get(name, 0.0)) <= (
            TYPE_SHARE_TOLERANCE
        )
    others = [name for name in FIELDS if name != "step"]
    pd.testing.assert_frame_equal(frame[others], base[others])


def test_a_burst_longer_than_the_rows_left_is_cut_and_marked(calibration):
    rows_per_step = 100
    change_row = SMALL_ROWS - rows_per_step
    frame, truth = generate(
        "volume",
        SMALL_ROWS,
        SEED,
        calibration=calibration,
        rows_per_step=rows_per_step,
        change_row=change_row,
    )
    (burst,) = truth["bursts"]

    assert burst["start_row"] == change_row and burst["end_row"] == SMALL_ROWS
    assert burst["truncated"] is True
    assert frame["step"].iloc[change_row:].nunique() == burst["end_step"] - burst["start_step"]


# --- Bad arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "arguments", "named"),
    [
        ("stationary", {"rows": 0}, "rows"),
        ("sudden", {"change_row": 0}, "change_row"),
        ("sudden", {"change_row": SMALL_ROWS}, "change_row"),
        ("sudden", {"campaign_share": 0.0}, "campaign_share"),
        ("sudden", {"campaign_share": 1.5}, "campaign_share"),
        ("new-category", {"new_category_share": -0.1}, "new_category_share"),
        ("gradual", {"change_end_row": SMALL_ROWS + 1}, "change_end_row"),
        ("gradual", {"gradual_factor": 0.0}, "gradual_factor"),
        ("volume", {"burst_steps": 0}, "burst_steps"),
        ("stationary", {"fraud_rate": 1.5}, "fraud_rate"),
        ("stationary", {"campaign_share": 0.5}, "campaign_share"),
        ("seasonal", {}, "scenario"),
    ],
)
def test_bad_arguments_are_refused_by_name(calibration, scenario, arguments, named):
    arguments = {"rows": SMALL_ROWS, **arguments}

    with pytest.raises(ValueError, match=named):
        generate(scenario, seed=SEED, calibration=calibration, **arguments)
