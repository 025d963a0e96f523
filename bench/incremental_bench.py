"""The monthly job after years of history: one new month folder lands on a stack holding N months;
each step of the job in its own process (ingest, dbt build, apply, materialize, monitor, a training
set of that month), then the month after in one `streamflow pipeline` process, for a short and a
long history side by side. The job should cost the same."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench.pipeline_bench import Step, measured
from streamflow import targets
from streamflow.generate import generate
from streamflow.ingest import month_dirs


def seeds_with(months: list[tuple[Path, object]], count: int, folder: Path) -> Path:
    """A seeds folder holding the first `count` month folders (links, not copies)."""
    folder.mkdir(parents=True, exist_ok=True)
    for month_dir, _ in months[:count]:
        link = folder / month_dir.name
        if not link.exists():
            link.symlink_to(month_dir, target_is_directory=True)
    return folder


def monthly_job(
    history: int, months: list, workdir: Path, target: targets.PgTarget, engine: dict[str, str] | None = None
) -> list[Step]:
    """Build a stack of `history` months (not timed), then land month `history` and time the job
    (`engine`: the variables of another offline engine than PostgreSQL)."""
    python, env = sys.executable, {"DATABASE_URL": target.url, **(engine or {})}
    seeds = seeds_with(months, history, workdir / f"history_{history}")
    setup, _ = measured(
        f"build {history} months of history",
        [python, "-m", "streamflow", "pipeline"],
        {**env, "SEEDS_DIR": str(seeds)},
    )
    seeds_with(months, history + 1, seeds)
    new_month = months[history][1]
    steps = [
        measured(
            "ingest (skips the loaded months)",
            [python, "-m", "streamflow", "ingest", "--seeds-dir", str(seeds)],
            env,
        )[0],
        measured("dbt build (the new month)", [python, "-m", "streamflow", "dbt"], env)[0],
        measured("feast apply", [python, "-m", "streamflow", "apply"], env)[0],
        measured("materialize (the new month)", [python, "-m", "streamflow", "materialize"], env)[0],
        measured("monitor (the new month)", [python, "-m", "streamflow", "monitor"], env)[0],
        measured(
            "training set (the new month)",
            [
                python,
                "-m",
                "streamflow",
                "training-set",
                "--as-of",
                str(new_month),
                "--out",
                str(workdir / "t.csv"),
            ],
            env,
        )[0],
    ]
    steps.append(Step("the monthly job", sum(s.seconds for s in steps), max(s.peak_mb for s in steps)))
    # The job as `make pipeline` and the flow run it: one process (Feast and dbt imported once),
    # on the month after (its training set is the course's first month: as many rows).
    seeds_with(months, history + 2, seeds)
    steps.append(
        measured(
            "the next month's job in one process (streamflow pipeline)",
            [python, "-m", "streamflow", "pipeline"],
            {**env, "SEEDS_DIR": str(seeds)},
        )[0]
    )
    job, one_process = steps[-2].seconds, steps[-1].seconds
    print(
        f"  history {history} months: built in {setup.seconds:.0f}s; the new month's job {job:.1f}s "
        f"(step by step), {one_process:.1f}s (one process)",
        flush=True,
    )
    return steps


def run(users: int, histories: list[int], workdir: Path, targets) -> pd.DataFrame:
    """`targets(history)` gives a fresh database for each history length."""
    months = month_dirs(generate(workdir / f"users_{users}", users=users, months=max(histories) + 2, seed=42))
    by_history = {h: monthly_job(h, months, workdir, targets(h)) for h in histories}
    table = pd.DataFrame(
        {
            f"{h} months of history (s)": [round(s.seconds, 1) for s in steps]
            for h, steps in by_history.items()
        },
        index=[s.name for s in by_history[histories[0]]],
    )
    short, long = histories[0], histories[-1]
    table[f"{long}/{short}"] = (table.iloc[:, -1] / table.iloc[:, 0]).round(2)
    return table
