"""The examples users take after the platform (examples/), run on the module's stack of generated
months: a churn model trained on the training set (a ROC AUC above chance, each feature's
importance, the model and its plot saved), then a user scored with features fetched from the API
and through Feast's own FeatureStore with the remote online store, which agree."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from streamflow import config
from tests.support import api_server, query, streamflow

pytestmark = pytest.mark.slow
EXAMPLES = config.PROJECT_ROOT / "examples"


def _example(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True, text=True, timeout=300, cwd=config.PROJECT_ROOT,
        env=config.child_environment(env),
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done


def test_a_model_trained_on_the_training_set_scores_a_user_fetched_online(store, fresh_db, tmp_path):
    env = {"DATABASE_URL": fresh_db.url}
    training_set = tmp_path / "training_df.csv"
    streamflow(["training-set", "--as-of", "all", "--out", str(training_set)], env)
    trained = _example(
        "train_churn_model.py", "--training-set", str(training_set), "--out", str(tmp_path), env=env
    )
    print(trained.stdout)
    auc = float(re.search(r"ROC AUC (\d\.\d+)", trained.stdout).group(1))
    assert auc > 0.5, trained.stdout
    assert "importance (ROC AUC lost when the feature is shuffled):" in trained.stdout
    assert (tmp_path / "churn_model.pkl").stat().st_size > 0
    assert (tmp_path / "feature_importance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    [(user,)] = query(fresh_db, "select min(user_id) from features.subs_profile")
    with api_server(fresh_db.url) as base:
        model = str(tmp_path / "churn_model.pkl")
        scored = _example("score_online.py", user, "--api", base, "--model", model, env=env)
    print(scored.stdout)
    assert f"{user}: 14 features from the API; through Feast's FeatureStore the same" in scored.stdout
    probability = float(re.search(r"churn probability (\d\.\d+)", scored.stdout).group(1))
    assert 0.0 <= probability <= 1.0
