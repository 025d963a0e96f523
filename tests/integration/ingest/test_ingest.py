"""Monthly ingestion against a real PostgreSQL: round trip, NULLs, idempotency, restatement and
bad files that must leave the database exactly as it was."""

from __future__ import annotations

import csv
import shutil
from datetime import date
from pathlib import Path

import psycopg
import pytest

from streamflow import cli, ingest
from streamflow.exports import TABLES
from streamflow.ingest import validate
from streamflow.ingest.tables import partition_name
from tests.bad_exports import BAD_MONTHS, rewrite, set_cell
from tests.support import EXPORTS, emptied, query, recreate_database, table_checksums

JAN, FEB = date(2024, 1, 31), date(2024, 2, 29)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module", params=EXPORTS)
def seeds(request) -> Path:
    """Each test here on the generated exports, then on the real ones (their blanks, their types)."""
    return request.getfixturevalue(f"{request.param}_exports")


@pytest.fixture(scope="module")
def loaded(server, fresh_db, seeds):
    emptied(server, fresh_db)  # each kind of exports in an empty database
    ingest.load_all(seeds)
    return fresh_db


def test_every_month_lands_with_its_row_count(loaded, seeds):
    for month_dir, as_of in ingest.month_dirs(seeds):
        for table in TABLES:
            expected = len(read_csv(month_dir / table.file_name))
            [(count,)] = query(
                loaded,
                f"select count(*) from raw.{table.snapshot_table} where as_of = %s",
                (as_of,),
            )
            assert count == expected, (table.name, as_of)


def test_values_and_types_round_trip(loaded, seeds):
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    rows = read_csv(month_dir / "subscriptions.csv")
    sample = rows[0]
    [db] = query(
        loaded,
        "select months_active, plan_stream_tv, contract_type, monthly_fee, "
        "total_paid, net_service from raw.subscriptions_snapshots where user_id = %s and as_of = %s",
        (sample["user_id"], as_of),
    )
    assert db[0] == int(sample["months_active"])
    assert db[1] == {"True": True, "False": False, "": None}[sample["plan_stream_tv"]]
    assert db[2] == sample["contract_type"]
    assert db[3] == pytest.approx(float(sample["monthly_fee"]))
    assert db[4] == pytest.approx(float(sample["total_paid"]))
    assert db[5] == sample["net_service"]
    types = dict(
        query(
            loaded,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'usage_agg_30d_snapshots'",
        )
    )
    assert types["watch_hours_30d"] == "double precision"
    assert types["skips_7d"] == "bigint"
    assert types["as_of"] == "date"


def test_blank_cells_become_null_never_false(loaded, seeds):
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    rows = read_csv(month_dir / "subscriptions.csv")
    blanks = sum(1 for r in rows if r["plan_stream_tv"] == "")
    falses = sum(1 for r in rows if r["plan_stream_tv"] == "False")
    assert blanks > 0, "the seeds are expected to have blank booleans"
    [(nulls, db_false)] = query(
        loaded,
        "select count(*) filter (where plan_stream_tv is null), "
        "count(*) filter (where plan_stream_tv = false) from raw.subscriptions_snapshots where as_of = %s",
        (as_of,),
    )
    assert (nulls, db_false) == (blanks, falses)


def test_live_tables_hold_the_latest_month(loaded, seeds):
    months = ingest.month_dirs(seeds)
    latest = months[-1][1]
    [(oldest, newest)] = query(loaded, "select min(as_of), max(as_of) from raw.usage_agg_30d")
    assert oldest == newest == latest
    # loading an older month again must not roll the live table back
    ingest.load_month(*months[0])
    [(newest_after,)] = query(loaded, "select min(as_of) from raw.usage_agg_30d")
    assert newest_after == latest


def test_loading_a_month_twice_changes_nothing_but_load_time(loaded, seeds):
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    statement = (
        "select md5(string_agg((t.user_id, t.watch_hours_30d, t.as_of)::text, '|' "
        "order by t.user_id, t.as_of)) from raw.usage_agg_30d_snapshots t"
    )
    before = query(loaded, statement)
    ingest.load_month(month_dir, as_of)
    assert query(loaded, statement) == before


def test_restating_a_month_replaces_only_that_month(loaded, seeds, tmp_path):
    months = ingest.month_dirs(seeds)
    (month_dir, as_of), (_, other_as_of) = months[0], months[1]
    restated = tmp_path / "month_000"
    shutil.copytree(month_dir, restated)
    rows = read_csv(restated / "usage_agg_30d.csv")
    target_user = rows[0]["user_id"]
    rows[0]["watch_hours_30d"] = "42.5"
    with (restated / "usage_agg_30d.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    statement = (
        "select md5(string_agg((t.*)::text, '|' order by t.user_id)) "
        "from raw.usage_agg_30d_snapshots t where as_of = %s"
    )
    other = query(loaded, statement, (other_as_of,))
    ingest.load_month(restated, as_of)
    [(value,)] = query(
        loaded,
        "select watch_hours_30d from raw.usage_agg_30d_snapshots where user_id = %s and as_of = %s",
        (target_user, as_of),
    )
    assert value == 42.5
    assert query(loaded, statement, (other_as_of,)) == other
    ingest.load_month(month_dir, as_of)  # put the real month back for the other tests


def test_a_file_replaced_after_its_check_loads_what_was_checked(loaded, seeds, tmp_path, monkeypatch):
    """The bytes validated are the bytes loaded: a usage file swapped, once validated, for one
    that names a user unknown to users.csv loads the validated rows, not the swapped ones."""
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    usage = shutil.copytree(month_dir, tmp_path / "month_000") / "usage_agg_30d.csv"
    rewrite(usage, lambda lines: [lines[0], *lines[2:]])  # one user fewer: a month to load again
    validated, real_check = len(read_csv(usage)), validate.check_file

    def check_then_swap(path, table, known_users):
        checked = real_check(path, table, known_users)
        if path == usage:  # what a writer replacing the export meanwhile does
            rewrite(usage, lambda lines: [*lines, "9999-ZZZZZ," + lines[-1].split(",", 1)[1]])
        return checked

    monkeypatch.setattr(validate, "check_file", check_then_swap)
    try:
        assert ingest.load_month(usage.parent, as_of)["usage_agg_30d"] == validated
        statement = "select count(*), count(*) filter (where user_id = '9999-ZZZZZ') from raw.usage_agg_30d_snapshots where as_of = %s"  # noqa: E501
        assert query(loaded, statement, (as_of,)) == [(validated, 0)]
    finally:
        monkeypatch.undo()
        ingest.load_month(month_dir, as_of)  # the month as the other tests know it


def test_each_month_is_one_partition_and_no_staging_table_is_left(loaded, seeds):
    months = [as_of for _, as_of in ingest.month_dirs(seeds)]
    ingest.load_month(*ingest.month_dirs(seeds)[-1])  # a restatement swaps a partition
    for table in TABLES:
        partitions = query(
            loaded,
            "select c.relname, pg_get_expr(c.relpartbound, c.oid) from pg_inherits i "
            "join pg_class c on c.oid = i.inhrelid where i.inhparent = %s::regclass order by 1",
            (f"raw.{table.snapshot_table}",),
        )
        assert [name for name, _ in partitions] == [partition_name(table, m) for m in months]
        assert all(str(m) in bound for (_, bound), m in zip(partitions, months, strict=True))
    leftovers = query(
        loaded,
        "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'raw' and (strpos(relname, '__incoming') > 0 or strpos(relname, '__next') > 0)",
    )
    assert leftovers == []


def test_views_and_grants_on_live_tables_survive_a_load(loaded, seeds):
    """Live tables are refilled, not replaced: what users built on them keeps working."""
    months = ingest.month_dirs(seeds)
    with psycopg.connect(loaded.url) as conn:
        conn.execute("create view raw.my_live_usage as select user_id, as_of from raw.usage_agg_30d")
        conn.execute("grant select on raw.usage_agg_30d to public")
    try:
        ingest.load_month(*months[-1])
        [(rows, newest)] = query(loaded, "select count(*), max(as_of) from raw.my_live_usage")
        [(live_rows,)] = query(loaded, "select count(*) from raw.usage_agg_30d")
        assert rows == live_rows > 0
        assert newest == months[-1][1]
        [(granted,)] = query(loaded, "select has_table_privilege('public', 'raw.usage_agg_30d', 'select')")
        assert granted
    finally:
        with psycopg.connect(loaded.url) as conn:
            conn.execute("drop view raw.my_live_usage")
            conn.execute("revoke select on raw.usage_agg_30d from public")


def test_snapshots_loaded_before_partitioning_keep_their_rows(server, seeds):
    """A database from before snapshots were partitioned: its rows move into month partitions."""
    target = recreate_database(server, "sf_test_ingest_legacy")
    usage = next(t for t in TABLES if t.name == "usage_agg_30d")
    columns = ", ".join(f"{c.name} {c.pg_type}" for c in usage.columns)
    with psycopg.connect(target.url) as conn:
        conn.execute("create schema raw")
        conn.execute(
            f"create table raw.usage_agg_30d_snapshots ({columns}, as_of date not null, "
            "loaded_at timestamptz not null, primary key (user_id, as_of))"
        )
        conn.execute(
            "insert into raw.usage_agg_30d_snapshots (user_id, watch_hours_30d, as_of, loaded_at) "
            "values ('old-1', 1.5, '2023-11-30', now()), ('old-1', 2.5, '2023-12-31', now()), "
            "('old-2', 3.5, '2023-12-31', now())"
        )
        conn.execute("create view raw.on_old_table as select * from raw.usage_agg_30d_snapshots")
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    ingest.load_month(month_dir, as_of, target)
    [(kind,)] = query(
        target, "select relkind from pg_class where oid = 'raw.usage_agg_30d_snapshots'::regclass"
    )
    assert kind == "p"
    old_rows = query(
        target,
        "select user_id, watch_hours_30d, as_of::text from raw.usage_agg_30d_snapshots "
        "where as_of < %s order by as_of, user_id",
        (as_of,),
    )
    assert old_rows == [
        ("old-1", 1.5, "2023-11-30"),
        ("old-1", 2.5, "2023-12-31"),
        ("old-2", 3.5, "2023-12-31"),
    ]
    [(count,)] = query(target, "select count(*) from raw.usage_agg_30d_snapshots where as_of = %s", (as_of,))
    assert count == len(read_csv(month_dir / "usage_agg_30d.csv"))
    [(partitions,)] = query(
        target, "select count(*) from pg_inherits where inhparent = 'raw.usage_agg_30d_snapshots'::regclass"
    )
    assert partitions == 3


# -- bad files: each aborts the whole month, names file/line/column, writes nothing ----------
@pytest.mark.parametrize("case", sorted(BAD_MONTHS))
def test_bad_month_aborts_and_changes_nothing(loaded, seeds, tmp_path, case):
    file_name, transform, fragments = BAD_MONTHS[case]
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    bad = tmp_path / "month_000"
    shutil.copytree(month_dir, bad)
    rewrite(bad / file_name, transform)
    before = table_checksums(loaded)
    with pytest.raises(ingest.IngestError) as failure:
        ingest.load_month(bad, as_of)
    for fragment in fragments:
        assert fragment in str(failure.value), (fragment, str(failure.value))
    assert table_checksums(loaded) == before


def test_missing_file_and_bad_encoding_abort(loaded, seeds, tmp_path):
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    bad = tmp_path / "month_000"
    shutil.copytree(month_dir, bad)
    before = table_checksums(loaded)
    (bad / "labels.csv").unlink()
    with pytest.raises(ingest.IngestError, match=r"labels\.csv: missing file"):
        ingest.load_month(bad, as_of)
    shutil.copy(month_dir / "labels.csv", bad / "labels.csv")
    raw = (bad / "users.csv").read_bytes().split(b"\n")
    raw[3] = raw[3].replace(b"Male", b"M\xe4le").replace(b"Female", b"Fem\xe4le")
    (bad / "users.csv").write_bytes(b"\n".join(raw))
    with pytest.raises(ingest.IngestError, match=r"users\.csv, line 4: not UTF-8"):
        ingest.load_month(bad, as_of)
    assert table_checksums(loaded) == before


def test_cli_reports_the_error_and_exits_non_zero(loaded, seeds, tmp_path, capsys):
    month_dir, _ = ingest.month_dirs(seeds)[0]
    bad = tmp_path / "month_000"
    shutil.copytree(month_dir, bad)
    rewrite(bad / "users.csv", set_cell("user_is_senior", 2, "maybe"))
    assert cli.main(["ingest", "--month-dir", str(bad), "--as-of", "2024-01-31"]) == cli.Exit.REFUSED
    err = capsys.readouterr().err
    assert "nothing was written" in err and "users.csv, line 2, column user_is_senior" in err


# -- exports as other tools write them ---------------------------------------------------------
SNAPSHOT_DIGEST = (
    "select * from ("
    + " union all ".join(
        f"select '{t.snapshot_table}', md5(string_agg(({', '.join(t.header)})::text, '|' order by user_id)) "
        f"from raw.{t.snapshot_table} where as_of = %(as_of)s"
        for t in TABLES
    )
    + ") as digests order by 1"
)


def _spreadsheet_style(source: Path, target: Path) -> None:
    """The same rows as another tool writes them: columns reversed, a byte order mark, quoted
    column names, CRLF line ends."""
    with source.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, *data = rows
    order = list(reversed(range(len(header))))
    lines = [",".join(f'"{header[i]}"' for i in order)]
    lines += [",".join(row[i] for i in order) for row in data]
    target.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")


def test_columns_by_name_in_any_order_with_spreadsheet_quirks(loaded, seeds, tmp_path):
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    quirky = tmp_path / "month_000"
    quirky.mkdir()
    for table in TABLES:
        _spreadsheet_style(month_dir / table.file_name, quirky / table.file_name)
    assert (quirky / "users.csv").read_bytes().startswith(b'\xef\xbb\xbf"has_dependents",')
    before = query(loaded, SNAPSHOT_DIGEST, {"as_of": as_of})
    assert ingest.load_month(quirky, as_of) == ingest.load_month(month_dir, as_of)
    ingest.load_month(quirky, as_of)
    assert query(loaded, SNAPSHOT_DIGEST, {"as_of": as_of}) == before


def test_a_rejected_file_lists_every_problem(loaded, seeds, tmp_path):
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    bad = tmp_path / "month_000"
    shutil.copytree(month_dir, bad)
    rewrite(bad / "subscriptions.csv", set_cell("months_active", 3, "three"))
    rewrite(bad / "subscriptions.csv", set_cell("paperless_billing", 5, "yes"))
    rewrite(bad / "subscriptions.csv", set_cell("monthly_fee", 8, "12,5".replace(",", ";")))
    before = table_checksums(loaded)
    with pytest.raises(ingest.IngestError) as failure:
        ingest.load_month(bad, as_of)
    message = str(failure.value)
    assert "subscriptions.csv: 3 problems" in message, message
    for fragment in ("line 3, column months_active: 'three'", "line 5, column paperless_billing: 'yes'",
                     "line 8, column monthly_fee: '12;5'"):  # fmt: skip
        assert fragment in message, message
    assert table_checksums(loaded) == before


def test_at_most_20_problems_are_listed(loaded, seeds, tmp_path):
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    bad = tmp_path / "month_000"
    shutil.copytree(month_dir, bad)
    for line in range(2, 32):
        rewrite(bad / "labels.csv", set_cell("churn_label", line, "maybe"))
    with pytest.raises(ingest.IngestError) as failure:
        ingest.load_month(bad, as_of)
    message = str(failure.value)
    assert "labels.csv: 20 problems or more" in message
    assert message.count("is not True or False") == 20
    assert "line 21, column churn_label" in message and "line 22," not in message


def test_a_repeated_column_is_refused_by_name(loaded, seeds, tmp_path):
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    bad = tmp_path / "month_000"
    shutil.copytree(month_dir, bad)
    rewrite(bad / "labels.csv", lambda ls: [line.rstrip("\n") + ("," + line.split(",")[1]) for line in ls])
    with pytest.raises(
        ingest.IngestError, match=r"labels\.csv, line 1, column churn_label: .*repeated column"
    ):
        ingest.load_month(bad, as_of)


@pytest.mark.parametrize("case", ["missing", "a_file", "no_months"])
def test_pipeline_refuses_a_bad_seeds_dir_in_one_line(loaded, tmp_path, monkeypatch, capsys, case):
    seeds_dir = tmp_path / "seeds"
    if case == "a_file":
        seeds_dir.write_text("not a folder")
    elif case == "no_months":
        (seeds_dir / "2024-01").mkdir(parents=True)
    monkeypatch.setenv("SEEDS_DIR", str(seeds_dir))
    before = table_checksums(loaded)
    assert cli.main(["pipeline"]) == cli.Exit.REFUSED
    err = capsys.readouterr().err.strip()
    expected = {"missing": "no such folder", "a_file": "not a folder", "no_months": "no month_NNN folders"}[
        case
    ]
    assert err.startswith("pipeline stopped, nothing was written") and expected in err, err
    assert str(seeds_dir) in err and len(err.splitlines()) == 1
    assert table_checksums(loaded) == before


def test_a_month_folder_without_its_files_is_refused(loaded, tmp_path, capsys):
    empty = tmp_path / "month_000"
    empty.mkdir()
    assert cli.main(["ingest", "--month-dir", str(empty)]) == cli.Exit.REFUSED
    err = capsys.readouterr().err.strip()
    assert "users.csv: missing file" in err and len(err.splitlines()) == 1
