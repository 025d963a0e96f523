"""The training set's CSV: the bytes pandas' `to_csv` writes (the course's format, and what the
engines' files are held to), made column by column with Arrow's kernels instead of value by value.

For a month of 1M users `to_csv` takes 4 s: it turns every cell into a Python string, then the
csv module joins them. Here each column becomes one Arrow string array in pandas' own text
(integers and booleans as they print, doubles as numpy prints them, NULLs empty), the columns are
joined into lines, and the lines are written as the one buffer they are. A double numpy prints
with an exponent takes numpy's own text; times take csv_text_once_per_value's (pandas' text of
each distinct time); a batch with what Arrow cannot promise to print as pandas does (times that
are not a few, text the csv module would quote) goes through pandas. Unit tests hold all of it
to `to_csv`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NEEDS_QUOTING = r'[,"\r\n]'  # what the csv module quotes (a delimiter, a quote, a line break)
# numpy prints a double positionally between these (1e-05 and 1e+16 otherwise); where Arrow's cast
# prints one positionally too, it has the same shortest digits, without numpy's ".0" on whole ones
POSITIONAL = (1e-4, 1e16)


def csv_text_once_per_value(column: pd.Series) -> pd.Series:
    """The column as `to_csv` writes it, each distinct value formatted once, where the values
    repeat: a training set's times are a few (one per month), and pandas formats them value by
    value (for 1M rows: 2.5 s; doubles are csv_rows', a column at a time). pandas formats each
    value on its own, so the text is the same, byte for byte; NULLs stay NULL (to_csv writes
    them). Mostly distinct values are left as they are."""
    codes, distinct = pd.factorize(column)
    if len(distinct) * 2 > len(column):
        return column
    text = pd.Series(distinct).to_csv(index=False, header=False, lineterminator="\n").split("\n")[:-1]
    table = np.array([*text, None], dtype=object)  # code -1 (NULL) takes the last: None
    return pd.Series(table[codes], index=column.index, dtype=object)


def _doubles(values: np.ndarray) -> pa.Array:
    text = pc.cast(pa.array(values, from_pandas=True), pa.string())  # NaN: NULL, as in pandas
    text = pc.if_else(pc.match_substring(text, "."), text, pc.binary_join_element_wise(text, ".0", ""))
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore"):
        plain = ((magnitude >= POSITIONAL[0]) & (magnitude < POSITIONAL[1])) | (values == 0)
    exponent = pc.fill_null(pc.match_substring(text, "e"), False).to_numpy(zero_copy_only=False)
    odd = (~plain | exponent) & ~np.isnan(values)  # Arrow turns to exponents from 1e15 or so
    if odd.any():  # tiny, huge or infinite: numpy's own text, value by value (they are rare)
        text = pc.replace_with_mask(text, pa.array(odd), pa.array(values[odd].astype(str)))
    return text


def column_text(column: pd.Series) -> pa.Array | None:
    """Each cell of `column` as `to_csv` writes it (NULL: None), or None where this cannot
    promise pandas' bytes."""
    if column.dtype.kind == "f":
        return _doubles(column.to_numpy())
    if column.dtype.kind == "M" or isinstance(column.dtype, pd.DatetimeTZDtype):
        return None  # times: csv_text_once_per_value's, or pandas'
    try:
        values = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a mix of kinds in one object column
        return None
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_boolean(values.type):
        return pc.if_else(values, "True", "False")
    if pa.types.is_integer(values.type):
        return pc.cast(values, pa.string())
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return None if pc.any(pc.match_substring_regex(values, NEEDS_QUOTING)).as_py() else values
    return None


def csv_rows(frame: pd.DataFrame) -> bytes:
    """The frame's rows as `frame.to_csv(index=False, header=False, lineterminator="\\n")` writes
    them, in UTF-8."""
    texts = [column_text(frame[name]) for name in frame.columns]
    # one column: the csv module quotes an empty value there (a line must not look blank)
    if len(frame) == 0 or len(texts) < 2 or any(text is None for text in texts):
        return frame.to_csv(index=False, header=False, lineterminator="\n").encode()
    lines = pc.binary_join_element_wise(*(pc.fill_null(text, "") for text in texts), ",")
    lines = pc.binary_join_element_wise(lines, "", "\n")  # each line with its end
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(lines.buffers()[1], dtype=width)[lines.offset : lines.offset + len(lines) + 1]
    return lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]  # the lines, one after another
