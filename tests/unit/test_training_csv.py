"""The training set's CSV: times and doubles formatted once per distinct value, the same bytes
as pandas'."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from streamflow.features.training import csv_text_once_per_value


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
