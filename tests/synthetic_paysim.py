"""Seeded PaySim-like transactions with a known change point, for tests."""

import numpy as np

from udfs.transactions import FIELDS

TYPE_SHARES = {"CASH_IN": 0.2, "CASH_OUT": 0.3, "PAYMENT": 0.2, "TRANSFER": 0.3}
# Median amount per type (lognormal, sigma 1), roughly PaySim's.
MEDIAN_AMOUNTS = {
    "CASH_IN": 120_000.0,
    "CASH_OUT": 150_000.0,
    "PAYMENT": 9_000.0,
    "TRANSFER": 400_000.0,
}


def transactions_csv(
    path, rows, seed, change_row=None, shifted_type="TRANSFER", log_shift=0.0, bad_lines=None
):
    """Write ``rows`` data rows to ``path``; from ``change_row`` on, ``shifted_type`` amounts
    have their log shifted by ``log_shift``. ``bad_lines`` maps a row to a line put there."""
    generator = np.random.default_rng(seed)
    types = generator.choice(list(TYPE_SHARES), size=rows, p=list(TYPE_SHARES.values()))
    medians = np.array([MEDIAN_AMOUNTS[name] for name in types])
    log_amount = np.log(medians) + generator.normal(0.0, 1.0, rows)
    if change_row is not None:
        shifted = (np.arange(rows) >= change_row) & (types == shifted_type)
        log_amount[shifted] += log_shift
    amount = np.round(np.exp(log_amount), 2)
    old_origin = np.round(amount * generator.uniform(0.5, 3.0, rows), 2)
    new_origin = np.round(np.maximum(old_origin - amount, 0.0), 2)
    old_destination = np.round(generator.lognormal(11.0, 1.5, rows), 2)
    new_destination = np.round(old_destination + amount, 2)
    lines = [",".join(FIELDS)]
    bad_lines = bad_lines or {}
    for row in range(rows):
        if row in bad_lines:
            lines.append(bad_lines[row])
            continue
        destination = "M" if types[row] == "PAYMENT" else "C"
        lines.append(
            f"{1 + row // 1000},{types[row]},{amount[row]},C{seed}{row},{old_origin[row]},"
            f"{new_origin[row]},{destination}{row},{old_destination[row]},"
            f"{new_destination[row]},0,0"
        )
    path.write_text("\n".join(lines) + "\n")
    return path
