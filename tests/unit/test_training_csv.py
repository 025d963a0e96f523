"""The training set's CSV (streamflow/features/training_csv.py): times and doubles formatted once
per distinct value, and whole rows made by Arrow's kernels: the same bytes as pandas' to_csv."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamflow.features.training_csv import column_text, csv_rows, csv_text_once_per_value


@pytest.mark.parametrize(
    "stamps",
    [
        ["2024-01-31 00:00:00+00:00", "2024-02-29 00:00:00+00:00", None, "2024-01-31 00:00:00+00:00"],
        ["2024-01-31 12:30:05.250000+00:00", "2024-02-29 00:00:00+00:00", "2024-02-29 00:00:00+00:00"],
        ["2024-01-31 23:59:59+05:30", None, None],
        [None, None],
    ],
)
def test_times_are_written_as_pandas_writes_them(stamps):
    column = pd.to_datetime(pd.Series(stamps, dtype=object), utc=True, format="ISO8601")
    frame = pd.DataFrame({"user_id": [f"u,{i}" for i in range(len(stamps))], "event_timestamp": column})
    expected = io.StringIO()
    frame.to_csv(expected, index=False)
    ours = frame.assign(event_timestamp=csv_text_once_per_value(frame["event_timestamp"]))
    written = io.StringIO()
    ours.to_csv(written, index=False)
    assert written.getvalue() == expected.getvalue()


@pytest.mark.parametrize(
    "values",
    [
        [19.99, 3.0, None, 1e-05, 19.99, -0.0, 1e16, 123456789.125, 3.0, 0.1 + 0.2, None],
        [2.5, 2.5, 2.5, 7.0],
        [0.1, 0.2, 0.3],  # all distinct: left as they are
    ],
)
def test_doubles_are_written_as_pandas_writes_them(values):
    frame = pd.DataFrame({"x": pd.Series(values, dtype="float64"), "n": range(len(values))})
    expected = io.StringIO()
    frame.to_csv(expected, index=False)
    written = io.StringIO()
    frame.assign(x=csv_text_once_per_value(frame["x"])).to_csv(written, index=False)
    assert written.getvalue() == expected.getvalue()


# -- whole rows: Arrow's text, held to to_csv's bytes ---------------------------------------------
def pandas_rows(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, header=False, lineterminator="\n").encode()


EDGE_DOUBLES = [1e-05, 1e15, 9999999999999998.0, 123456789012345.67, -0.0, 0.0, float("inf"),
                -float("inf"), float("nan"), 5e-324, 1e16, 0.0001, 1.7976931348623157e308, 0.1 + 0.2,
                -2.5, 1 / 3, 2.0**52 + 0.5, 12.2]  # fmt: skip


def test_doubles_ints_booleans_and_text_take_arrows_path_with_pandas_bytes():
    n = len(EDGE_DOUBLES)
    frame = pd.DataFrame(
        {
            "user_id": [f"user {i}" if i % 5 else None for i in range(n)],
            "x": pd.Series(EDGE_DOUBLES, dtype="float64"),
            "i": range(-3, n - 3),
            "n": pd.Series([None if i % 4 == 0 else i * 10**12 for i in range(n)], dtype="Int64"),
            "b": [i % 2 == 0 for i in range(n)],
            "nb": pd.Series([None if i % 3 == 0 else i % 2 == 0 for i in range(n)], dtype=object),
            "lb": pd.Series([None if i % 3 == 0 else i % 2 == 1 for i in range(n)], dtype="boolean"),
            "nothing": pd.Series([None] * n, dtype=object),
        }
    )
    assert all(column_text(frame[name]) is not None for name in frame.columns)
    assert csv_rows(frame) == pandas_rows(frame)


@pytest.mark.parametrize("text", ["a,b", 'say "hi"', "two\nlines", "cr\rhere"])
def test_text_the_csv_module_quotes_goes_through_pandas(text):
    frame = pd.DataFrame({"user_id": ["plain", text, None], "n": [1, 2, 3]})
    assert column_text(frame["user_id"]) is None
    assert csv_rows(frame) == pandas_rows(frame)


def test_one_column_and_no_rows_are_pandas_own():
    for frame in (pd.DataFrame({"user_id": ["a", "", None]}), pd.DataFrame({"a": [], "b": []})):
        assert csv_rows(frame) == pandas_rows(frame)


optional = st.one_of(st.none(), st.booleans())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(max_size=6)),
            st.one_of(st.none(), st.floats(width=64)),
            st.integers(-(2**63), 2**63 - 1),
            st.one_of(st.none(), st.integers(-(2**40), 2**40)),
            optional,
            st.sampled_from(["2024-01-31 00:00:00+00:00", "2024-02-29 00:00:00+00:00", None]),
        ),
        max_size=25,
    )
)
def test_any_rows_are_written_as_pandas_writes_them(rows):
    """Every kind of cell a training set holds, after the times' and doubles' once-per-value
    text as training.py applies it: the same bytes as to_csv's."""
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[]] * 6
    text, doubles, ints, nullable, flags, stamps = columns
    frame = pd.DataFrame(
        {
            "user_id": pd.Series(text, dtype=object),
            "x": pd.Series(doubles, dtype="float64"),
            "i": pd.Series(ints, dtype="int64"),
            "n": pd.Series(nullable, dtype="Int64"),
            "flag": pd.Series(flags, dtype=object),
            "event_timestamp": pd.to_datetime(pd.Series(stamps, dtype=object), utc=True),
        }
    )
    assert csv_rows(frame) == pandas_rows(frame)
    for name in ("x", "event_timestamp"):
        frame[name] = csv_text_once_per_value(frame[name])
    assert csv_rows(frame) == pandas_rows(frame)
