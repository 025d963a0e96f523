"""The Spark engine's landing of a month in the lake (no JVM): the PostgreSQL engine's refusals,
whole or not at all, one Hive partition per as_of per table, a restatement replacing its one
partition, an unchanged month skipped by checksum."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from streamflow import config, ingest
from streamflow.engines import lake
from streamflow.exports import TABLES
from streamflow.generate import generate
from tests.bad_exports import BAD_MONTHS, rewrite
from tests.support import query

pytestmark = pytest.mark.slow


@pytest.fixture
def months(fresh_db, tmp_path):
    with config.overridden({config.LAKE_DIR: str(tmp_path / "lake")}):
        yield ingest.month_dirs(generate(tmp_path / "seeds", users=200, months=2, seed=3))


def lake_files(root: Path) -> dict[str, str]:
    """Every file under the lake, hidden ones included, with its sha256."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_a_month_lands_as_one_partition_per_table_and_is_skipped_when_unchanged(months, fresh_db):
    (first_dir, first), (second_dir, second) = months
    assert lake.load_month(first_dir, first) == {table.name: 200 for table in TABLES}
    lake.load_month(second_dir, second)
    for table in TABLES:
        folders = sorted(p.name for p in (lake.raw_dir() / table.snapshot_table).iterdir())
        assert folders == [f"as_of={first}", f"as_of={second}"], folders  # nothing hidden left
    users = ds.dataset(lake.raw_dir() / "users_snapshots", format="parquet", partitioning="hive").to_table()
    assert users.num_rows == 400 and set(users.column_names) >= {"user_id", "as_of", "loaded_at"}
    before = lake_files(lake.raw_dir())
    assert lake.load_month(first_dir, first) == {}  # the same files: skipped
    assert lake_files(lake.raw_dir()) == before
    logged = query(fresh_db, "select count(*) from raw.ingest_log where as_of = %s", (first,))
    assert logged == [(len(TABLES),)]


REFUSED = ["missing_column", "duplicate_user", "unparsable_float", "unknown_user", "truncated_last_line"]


@pytest.mark.parametrize("case", REFUSED)
def test_a_bad_export_is_refused_as_on_postgres_and_the_lake_is_untouched(months, tmp_path, case):
    (first_dir, first), (second_dir, second) = months
    lake.load_month(first_dir, first)
    before = lake_files(lake.raw_dir())
    broken = tmp_path / "broken"
    shutil.copytree(second_dir, broken)
    file_name, transform, fragments = BAD_MONTHS[case]
    rewrite(broken / file_name, transform)
    with pytest.raises(ingest.IngestError) as refused:
        lake.load_month(broken, second)
    assert all(fragment in str(refused.value) for fragment in fragments), refused.value
    assert lake_files(lake.raw_dir()) == before


def test_a_restatement_replaces_its_one_partition(months, tmp_path, fresh_db):
    (first_dir, first), (second_dir, second) = months
    lake.load_month(first_dir, first)
    lake.load_month(second_dir, second)
    before = lake_files(lake.raw_dir())
    restated = tmp_path / "restated"
    shutil.copytree(first_dir, restated)
    rewrite(restated / "usage_agg_30d.csv", lambda ls: [ls[0], *ls[2:]])  # one user fewer
    assert lake.load_month(restated, first)["usage_agg_30d"] == 199
    after = lake_files(lake.raw_dir())
    changed = {name.split("/")[1] for name in set(before) ^ set(after)} | {
        name.split("/")[1] for name in before.keys() & after.keys() if before[name] != after[name]
    }
    assert changed == {f"as_of={first}"}  # the other month's files are untouched
    usage = ds.dataset(lake.raw_dir() / "usage_agg_30d_snapshots", format="parquet", partitioning="hive")
    assert usage.to_table().num_rows == 399


# A restatement's load that dies right after it moved the month's old partition aside (the first
# of the swap's two renames): the kill a power cut or `kill -9` can make.
KILLED_MID_SWAP = """
import os, sys
from datetime import date
from pathlib import Path
from streamflow.engines import lake

real_rename = Path.rename

def rename(self, target):
    moved = real_rename(self, target)
    if Path(target).name.startswith(".retired-"):
        os._exit(9)
    return moved

Path.rename = rename
lake.load_month(Path(sys.argv[1]), date.fromisoformat(sys.argv[2]))
"""


def test_a_swap_killed_between_its_renames_hides_no_month(months, tmp_path, fresh_db):
    (first_dir, first), (second_dir, second) = months
    lake.load_month(first_dir, first)
    lake.load_month(second_dir, second)
    before = lake_files(lake.raw_dir())
    logged = query(fresh_db, "select table_name, sha256 from raw.ingest_log order by 1, 2")
    restated = tmp_path / "restated"
    shutil.copytree(first_dir, restated)
    rewrite(restated / "usage_agg_30d.csv", lambda ls: [ls[0], *ls[2:]])
    for attempt in range(2):
        killed = subprocess.run([sys.executable, "-c", KILLED_MID_SWAP, str(restated), str(first)])
        assert killed.returncode == 9
        hidden = lake.raw_dir() / "users_snapshots" / f"as_of={first}"
        assert not hidden.exists()  # the month is gone from what Spark reads...
        if attempt == 0:  # ...until the next load puts it back: the old files, logged, so skipped
            assert lake.load_month(first_dir, first) == {}
        else:  # ...or the next reader (register_raw_tables, before dbt reads the lake)
            assert lake.recover() == [hidden]
        assert lake_files(lake.raw_dir()) == before, "the old partition, byte for byte"
        assert query(fresh_db, "select table_name, sha256 from raw.ingest_log order by 1, 2") == logged
