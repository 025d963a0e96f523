"""Deterministic StreamFlow exports in the real format, at any size.

Writes `month_NNN/<table>.csv` exactly like the real monthly exports: same headers, booleans as
True/False, blank cells where the real data has them (streaming plans of users without internet
service), realistic ranges, values drifting month to month and some users churning. Users are
made in blocks with their own seeded generator, so memory stays flat at a million users and the
same seed always gives byte-identical files.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pandas as pd

from streamflow import progress
from streamflow.exports import TABLES

BLOCK = 100_000
LETTERS = np.array(list(string.ascii_uppercase))
ID_SPACE = 26**5  # five letters after the four digits, e.g. 7590-VHVEG
ID_STRIDE = 7_919  # coprime with 26**5, so ids never collide


def user_ids(start: int, stop: int, seed: int) -> np.ndarray:
    index = np.arange(start, stop, dtype=np.int64)
    digits = np.char.zfill((index % 10_000).astype(str), 4)
    code = (index * ID_STRIDE + seed * 104_729) % ID_SPACE  # a bijection for < 26**5 users
    letters = np.empty((len(index), 5), dtype="<U1")
    for position in range(4, -1, -1):
        letters[:, position] = LETTERS[code % 26]
        code //= 26
    return np.char.add(np.char.add(digits, "-"), np.array(["".join(row) for row in letters]))


def _nullable(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Booleans as an object array where unknown cells stay None (written blank)."""
    out = values.astype(object)
    out[~known] = None
    return out


def _base_block(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Everything about a user that does not depend on the month."""
    net = rng.choice(np.array(["DSL", "Fiber optic", "No"]), size=n, p=[0.34, 0.44, 0.22])
    fee = np.round(np.where(net == "No", rng.uniform(18.25, 26.0, n), rng.uniform(24.0, 118.75, n)), 2)
    return {
        "signup_date": (np.datetime64("2022-01-01") + rng.integers(0, 37, n)).astype(str),
        "user_gender": rng.choice(np.array(["Female", "Male"]), size=n),
        "user_is_senior": rng.random(n) < 0.16,
        "has_family": rng.random(n) < 0.48,
        "has_dependents": rng.random(n) < 0.30,
        "months_active": rng.integers(0, 72, n),
        "plan_stream_tv": rng.random(n) < 0.38,
        "plan_stream_movies": rng.random(n) < 0.39,
        "contract_type": rng.choice(
            np.array(["Month-to-month", "One year", "Two year"]), size=n, p=[0.55, 0.21, 0.24]
        ),
        "paperless_billing": rng.random(n) < 0.59,
        "monthly_fee": fee,
        "net_service": net,
        "watch_hours": rng.uniform(5.7, 50.0, n),
        "devices": rng.integers(1, 4, n),
        "risk": rng.random(n),  # a latent churn propensity that drives the behaviour below
        "resolution": np.round(rng.uniform(1.0, 24.9, n), 1),
    }


def _month_frames(base: dict, ids: np.ndarray, rng: np.random.Generator, month: int) -> dict:
    n = len(ids)
    risk = base["risk"]
    months_active = np.minimum(base["months_active"] + month, 72)
    internet = base["net_service"] != "No"
    watch = np.clip(base["watch_hours"] * (1 + rng.normal(0, 0.05, n)) - 3 * risk * month, 0.5, None)
    churn = rng.random(n) < 0.1 + 0.35 * risk * (base["contract_type"] == "Month-to-month")
    return {
        "users": {
            "signup_date": base["signup_date"],
            "user_gender": base["user_gender"],
            "user_is_senior": base["user_is_senior"],
            "has_family": base["has_family"],
            "has_dependents": base["has_dependents"],
        },
        "subscriptions": {
            "months_active": months_active,
            "plan_stream_tv": _nullable(base["plan_stream_tv"], internet),
            "plan_stream_movies": _nullable(base["plan_stream_movies"], internet),
            "contract_type": base["contract_type"],
            "paperless_billing": base["paperless_billing"],
            "monthly_fee": base["monthly_fee"],
            "total_paid": np.round(base["monthly_fee"] * months_active, 2),
            "net_service": base["net_service"],
        },
        "usage_agg_30d": {
            "watch_hours_30d": watch,
            "avg_session_mins_7d": np.clip(rng.normal(29.1, 6.0, n), 3.0, None),
            "unique_devices_30d": base["devices"],
            "skips_7d": rng.poisson(2 + 6 * risk),
            "rebuffer_events_7d": rng.poisson(1 + 3 * risk),
        },
        "payments_agg_90d": {"failed_payments_90d": rng.binomial(3, 0.05 + 0.3 * risk)},
        "support_agg_90d": {
            "support_tickets_90d": rng.binomial(4, 0.05 + 0.25 * risk),
            "ticket_avg_resolution_hrs_90d": base["resolution"],
        },
        "labels": {"churn_label": churn},
    }


def generate(out_dir: Path, users: int, months: int, seed: int = 42) -> Path:
    out_dir = Path(out_dir)
    handles = {}
    for month in range(months):
        folder = out_dir / f"month_{month:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for table in TABLES:
            fh = (folder / table.file_name).open("w", newline="")
            fh.write(",".join(table.header) + "\n")
            handles[(month, table.name)] = fh
    try:
        with progress.task(f"generate {months} months", total=users, unit="users") as shown:
            for start in range(0, users, BLOCK):
                stop = min(start + BLOCK, users)
                ids = user_ids(start, stop, seed)
                base = _base_block(np.random.default_rng([seed, start]), stop - start)
                for month in range(months):
                    frames = _month_frames(base, ids, np.random.default_rng([seed, start, month + 1]), month)
                    for table in TABLES:
                        frame = pd.DataFrame({"user_id": ids, **frames[table.name]})
                        frame.to_csv(
                            handles[(month, table.name)], header=False, index=False, lineterminator="\n"
                        )
                shown.advance(stop - start)
    finally:
        for fh in handles.values():
            fh.close()
    return out_dir
