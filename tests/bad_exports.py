"""Bad monthly exports, made from a good month: each must abort the whole month with a message
naming the file, line and column, and write nothing (tests/unit/test_exports_and_ids.py,
tests/integration/ingest/, tests/reliability/)."""

from __future__ import annotations

from pathlib import Path


def rewrite(path: Path, transform) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(transform(lines)))


def set_cell(column: str, line: int, value: str):
    def transform(lines):
        header = lines[0].rstrip("\n").split(",")
        cells = lines[line - 1].rstrip("\n").split(",")
        cells[header.index(column)] = value
        lines[line - 1] = ",".join(cells) + "\n"
        return lines

    return transform


BAD_MONTHS = {
    # name: (file, transform, expected fragments of the message)
    "missing_column": (
        "usage_agg_30d.csv",
        lambda ls: [",".join(line.rstrip("\n").split(",")[:-1]) + "\n" for line in ls],
        ["usage_agg_30d.csv", "line 1", "rebuffer_events_7d", "missing column"],
    ),
    "extra_column": (
        "payments_agg_90d.csv",
        lambda ls: [line.rstrip("\n") + (",extra\n" if i == 0 else ",1\n") for i, line in enumerate(ls)],
        ["payments_agg_90d.csv", "line 1", "extra", "unexpected column"],
    ),
    "renamed_column": (
        "labels.csv",
        lambda ls: ["user_id,churned\n", *ls[1:]],
        ["labels.csv", "line 1", "churn_label"],
    ),
    "unparsable_int": (
        "subscriptions.csv",
        set_cell("months_active", 5, "twelve"),
        ["subscriptions.csv", "line 5", "months_active", "'twelve'"],
    ),
    "unparsable_float": (
        "usage_agg_30d.csv",
        set_cell("watch_hours_30d", 9, "1.2.3"),
        ["usage_agg_30d.csv", "line 9", "watch_hours_30d"],
    ),
    "bad_boolean": (
        "subscriptions.csv",
        set_cell("paperless_billing", 7, "yes"),
        ["subscriptions.csv", "line 7", "paperless_billing", "True or False"],
    ),
    "bad_date": (
        "users.csv",
        set_cell("signup_date", 4, "2022-02-30"),
        ["users.csv", "line 4", "signup_date"],
    ),
    "duplicate_user": (
        "support_agg_90d.csv",
        lambda ls: [*ls[:6], ls[2], *ls[7:]],
        ["support_agg_90d.csv", "line 7", "user_id", "duplicate"],
    ),
    "empty_user_id": (
        "labels.csv",
        set_cell("user_id", 3, ""),
        ["labels.csv", "line 3", "user_id", "empty"],
    ),
    "unknown_user": (
        "usage_agg_30d.csv",
        set_cell("user_id", 6, "0000-NOBODY"),
        ["usage_agg_30d.csv", "line 6", "user_id", "not in users.csv"],
    ),
    "too_many_fields": (
        "payments_agg_90d.csv",
        lambda ls: [*ls[:10], ls[10].rstrip("\n") + ",9\n", *ls[11:]],
        ["payments_agg_90d.csv", "line 11", "expected 2 fields"],
    ),
    "truncated_last_line": (
        "support_agg_90d.csv",
        lambda ls: [*ls[:-1], ls[-1].split(",")[0]],
        ["support_agg_90d.csv", "support_tickets_90d", "too few fields"],
    ),
    "wrong_delimiter": (
        "labels.csv",
        lambda ls: [line.replace(",", ";") for line in ls],
        ["labels.csv", "line 1", "delimiter"],
    ),
    "zero_byte_file": (
        "payments_agg_90d.csv",
        lambda ls: [],
        ["payments_agg_90d.csv", "empty file"],
    ),
}
