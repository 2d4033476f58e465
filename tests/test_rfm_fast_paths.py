"""The numba grouping kernel of the RFM summary against a plain numpy reference, bit for bit.

The reference is the numpy formulation the kernel replaced: a stable sort by (customer,
period), ``np.add.reduceat`` over the rows of each period and then over the periods of each
customer, ``np.bincount`` of ``np.log`` of the gaps. Inputs are built to reach every branch of
the kernel: rows out of date order (insertion sort and merge sort), periods with more than 8
and more than 128 rows (numpy's pairwise summation), customers with hundreds of periods,
amounts of very different magnitudes and negative zeros, hourly periods over a span too long
for the kernel's table of logs, and summaries without amounts.
"""

import numpy as np
import pandas as pd
import pytest

import clvmodels as clv


def reference_summary(frame, end, period_us, per_unit, with_amounts):
    """frequency, recency, T, litt (and monetary_value) computed with numpy alone."""
    ids, codes = np.unique(frame["customer_id"].to_numpy(), return_inverse=True)
    stamps = frame["date"].to_numpy(dtype="datetime64[us]").view(np.int64)
    periods = stamps // period_us
    order = np.lexsort((periods, codes))  # stable: rows of one period keep their order
    key_c, key_p = codes[order], periods[order]
    new = np.r_[True, (key_c[1:] != key_c[:-1]) | (key_p[1:] != key_p[:-1])]
    starts = np.flatnonzero(new)
    p_code, p_period = key_c[starts], key_p[starts]
    c_start = np.flatnonzero(np.r_[True, p_code[1:] != p_code[:-1]])
    c_end = np.append(c_start[1:], len(p_code)) - 1
    first, last = p_period[c_start], p_period[c_end]
    frequency = c_end - c_start
    same = p_code[1:] == p_code[:-1]
    log_gaps = np.bincount(
        p_code[1:][same], weights=np.log(np.diff(p_period)[same]), minlength=len(ids)
    )
    out = pd.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": (last - first).astype(np.float64) / per_unit,
            "T": (end - first).astype(np.float64) / per_unit,
            "litt": log_gaps - frequency * np.log(per_unit),
        },
        index=pd.Index(ids, name="customer_id"),
    )
    if with_amounts:
        amounts = frame["amount"].to_numpy(dtype=np.float64)
        p_amount = np.add.reduceat(amounts[order], starts)
        repeat = np.add.reduceat(p_amount, c_start) - p_amount[c_start]
        out["monetary_value"] = np.where(frequency > 0, repeat / np.maximum(frequency, 1), 0.0)
    return out


def assert_bitwise_equal(got, expected):
    assert list(got.index) == list(expected.index)
    for column in expected:
        a = got[column].to_numpy()
        b = expected[column].to_numpy()
        assert a.dtype == b.dtype, column
        assert np.array_equal(a.view(np.int64), b.view(np.int64)), column


def adversarial_transactions(rng, n_customers=300):
    rows_per = rng.integers(1, 12, n_customers)
    rows_per[:3] = (40, 300, 2000)  # merge sort; pairwise blocks of 128 and the halving
    ids = np.repeat(np.arange(n_customers) * 7 + 3, rows_per)
    days = rng.integers(0, 900, len(ids))
    heavy = ids == 3 + 7 * 2
    days[heavy] = rng.integers(0, 20, heavy.sum())  # ~100 rows on each of 20 days
    one_day = ids == 3 + 7 * 1
    days[one_day] = 5  # 300 rows on one day
    amounts = rng.choice([1e-3, 0.1, 7.0, 1e9, 3e15, 0.0], len(ids)) * rng.random(len(ids))
    amounts[rng.random(len(ids)) < 0.05] = -0.0
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(days * 24 + 13, unit="h"),
            "amount": amounts,
        }
    )
    return frame.sample(frac=1.0, random_state=int(rng.integers(1 << 31)), ignore_index=True)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("with_amounts", [True, False])
def test_kernel_matches_numpy_reference_bit_for_bit(seed, with_amounts):
    frame = adversarial_transactions(np.random.default_rng(seed))
    assert (np.signbit(frame["amount"]) & (frame["amount"] == 0)).any()
    got = clv.rfm_summary(
        frame, monetary="amount" if with_amounts else None, time_unit="W", engine="pandas"
    )
    end = frame["date"].max().to_datetime64().astype("datetime64[us]").astype(np.int64)
    expected = reference_summary(frame, end // 86_400_000_000, 86_400_000_000, 7.0, with_amounts)
    assert_bitwise_equal(got, expected)
    duck = clv.rfm_summary(
        frame, monetary="amount" if with_amounts else None, time_unit="W", engine="duckdb"
    )
    assert_bitwise_equal(duck, expected)


def test_date_ordered_log_and_shuffled_log_agree():
    frame = adversarial_transactions(np.random.default_rng(5))
    ordered = frame.sort_values("date", kind="stable", ignore_index=True)
    a = clv.rfm_summary(ordered, monetary="amount", engine="pandas")
    end = ordered["date"].max().to_datetime64().astype("datetime64[us]").astype(np.int64)
    assert_bitwise_equal(
        a, reference_summary(ordered, end // 86_400_000_000, 86_400_000_000, 1.0, True)
    )


def test_hourly_periods_over_a_long_span_without_the_log_table():
    # 3 rows spread over ~8,000 years of hours: more periods than a table of logs may hold
    frame = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2],
            "date": pd.to_datetime(
                [
                    "0100-01-01 05:00",
                    "5000-06-01 07:00",
                    "8100-01-01 00:00",
                    "0100-01-01",
                    "0100-01-01 01:00",
                ]  # fmt: skip
            ).astype("datetime64[us]"),
            "amount": [1.0, 2.5, 4.0, 3.0, 0.5],
        }
    )
    got = clv.rfm_summary(frame, monetary="amount", time_unit="H", engine="pandas")
    end = frame["date"].max().to_datetime64().astype("datetime64[us]").astype(np.int64)
    expected = reference_summary(frame, end // 3_600_000_000, 3_600_000_000, 1.0, True)
    assert_bitwise_equal(got, expected)
    assert got.loc[1, "frequency"] == 2
    assert got.loc[1, "litt"] > 0
