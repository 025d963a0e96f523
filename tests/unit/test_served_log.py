"""The API's served log (serving/served_log.py): sampled, bounded, closed spool files the collector
reads in Feast's logging schema (streamflow/served/spool.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from serving import served_log
from serving.catalog import Selection, ViewSpec
from serving.schemas import FeatureViewStatus
from serving.stores.base import Vector
from streamflow.served import spool

VIEW = ViewSpec("usage", timedelta(days=45), ("watch_hours", "devices"), "usage@1", ("Float64", "Int64"))
SELECTION = Selection("svc", ((VIEW, ("watch_hours", "devices")),))
STAMP = datetime(2024, 2, 29, tzinfo=UTC)


class Request:
    """What the log reads of a request: its headers."""

    def __init__(self) -> None:
        self.scope = {"headers": [(b"accept", b"*/*"), (b"x-request-id", b"req-1")]}


def vector(user: str, held: bool = False) -> Vector:
    views = {"usage": FeatureViewStatus(event_timestamp=STAMP, status="stale")}
    return Vector(user, True, {"watch_hours": 1.5, "devices": None}, views, held=held)


def test_kept_vectors_land_in_a_closed_file_read_in_feasts_logging_schema(tmp_path):
    log = served_log.ServedLog(tmp_path, 1.0, 10)
    log.keep("GET /features/{user_id}", Request(), SELECTION, [vector("a"), vector("b", held=True)], 7)
    missing = Vector("c", False, {"watch_hours": None, "devices": None}, {})
    log.keep("POST /features", NoId(), SELECTION, [missing], None)
    asyncio.run(log.flush(force_roll=True))
    [path] = tmp_path.glob("*.jsonl")
    assert path.name.startswith("svc-") and not list(tmp_path.glob("*.open"))
    service, table = spool.read(path)
    rows = table.to_pylist()
    assert service == "svc" and [r["user_id"] for r in rows] == ["a", "b", "c"] and log.counts.logged == 3
    first = rows[0]
    assert first["usage__watch_hours"] == 1.5 and first["usage__watch_hours__timestamp"] == STAMP
    assert first["usage__watch_hours__status"] == spool.OUTSIDE_MAX_AGE
    assert first["usage__devices"] is None and first["usage__devices__status"] == spool.OUTSIDE_MAX_AGE
    ours = (first["__request_id"], first["__generation"], first["__held"], rows[1]["__held"])
    assert ours == ("req-1", 7, False, True)
    served_at = first["__log_timestamp"]
    assert served_at.tzinfo is not None and first["__log_date"] == served_at.date()
    assert rows[2]["usage__devices__status"] == spool.NOT_FOUND
    assert rows[2]["__request_id"] not in ("", None, "not sane\n")  # ours, the caller's not sane
    assert table.schema == spool.logging_schema(served_log.parts_of(SELECTION))
    assert table.schema.field("usage__devices").type == "int64"


class NoId:
    def __init__(self) -> None:
        self.scope = {"headers": [(b"x-request-id", b"not sane\n")]}


def test_an_empty_file_reads_as_no_rows(tmp_path):
    path = tmp_path / f"svc-1-x{spool.CLOSED}"
    path.write_bytes(spool.header("svc", served_log.parts_of(SELECTION)))
    assert spool.read(path)[1].num_rows == 0


def test_nothing_is_kept_at_a_zero_sample_and_past_the_queue_or_the_disk_records_are_counted(tmp_path):
    log = served_log.ServedLog(tmp_path, 0.0, 1)
    log.keep("r", Request(), SELECTION, [vector("a")], None)
    assert log.pending == {}
    full = served_log.ServedLog(tmp_path, 1.0, 1)
    full.queued = served_log.QUEUE_MAX
    full.keep("r", Request(), SELECTION, [vector("a")], None)
    assert full.counts.dropped_queue == 1
    (tmp_path / "ballast").write_bytes(b"x" * (2 << 20))  # the spool over its 1 MB
    disk = served_log.ServedLog(tmp_path, 1.0, 1)
    disk.keep("r", Request(), SELECTION, [vector("a"), vector("b")], None)
    asyncio.run(disk.flush(force_roll=True))
    assert disk.counts.dropped_disk == 2 and not list(tmp_path.glob("*.jsonl"))


def test_the_bound_counts_what_the_worker_wrote_since_it_last_looked_at_the_folder(tmp_path):
    files, counts = served_log.Spool(tmp_path, max_bytes=1000), served_log.Counts()
    files.write({SELECTION: [b"x" * 2000]}, counts)  # the folder was empty when looked at
    files.write({SELECTION: [b"y"]}, counts)  # within the second: no new look, yet over the bound
    assert (counts.logged, counts.dropped_disk) == (1, 1)
    files.roll(force=True)


def test_a_view_with_no_row_for_the_user_is_read_as_not_found(tmp_path):
    """A view the store holds nothing of for a user still has a status, with no event time
    (`missing`): the collector reads it (it refused the whole file, so no replay went past it)."""
    log = served_log.ServedLog(tmp_path, 1.0, 10)
    nothing = {"usage": FeatureViewStatus(event_timestamp=None, status="missing")}
    log.keep(
        "POST /features",
        Request(),
        SELECTION,
        [Vector("d", True, {"watch_hours": None, "devices": None}, nothing)],
        1,
    )
    asyncio.run(log.flush(force_roll=True))
    [path] = tmp_path.glob("*.jsonl")
    [row] = spool.read(path)[1].to_pylist()
    assert (
        row["usage__watch_hours__timestamp"] is None and row["usage__watch_hours__status"] == spool.NOT_FOUND
    )
