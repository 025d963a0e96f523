"""Score a user with features fetched online: the step after examples/train_churn_model.py.

    python examples/score_online.py 7590-VHVEG [--api http://127.0.0.1:8000]
                                               [--model data/models/churn_model.pkl]

The user's vector is fetched twice, as a service would: from the features API
(`GET /features/{user_id}`), and through Feast's own `FeatureStore` with the `remote` online store
pointed at the same API (Feast's serving protocol, `POST /get-online-features`); both must give
the same values. The model saved by the training example scores it: the churn probability."""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import tempfile
import urllib.request
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_churn_model import model_inputs

from streamflow.features.store import REPO_DIR, use_repo

SERVICE = "churn_api_v1"


def from_api(api: str, user_id: str, token: str | None) -> dict:
    request = urllib.request.Request(f"{api}/features/{user_id}")  # noqa: S310 - the user's URL
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)["features"]


def through_feast(api: str, user_id: str) -> dict:
    """Feast's FeatureStore, its registry as the project's, its online store the remote one: our API."""
    from feast import FeatureStore

    config = yaml.safe_load((REPO_DIR / "feature_store.yaml").read_text())
    config["online_store"] = {"type": "remote", "path": api}
    with tempfile.TemporaryDirectory() as repo:
        (Path(repo) / "feature_store.yaml").write_text(yaml.safe_dump(config))
        use_repo()  # the registry's connection variables, as every project tool sets them
        store = FeatureStore(repo_path=repo)
        answer = store.get_online_features(
            features=store.get_feature_service(SERVICE), entity_rows=[{"user_id": user_id}]
        ).to_dict()
    return {name: values[0] for name, values in answer.items() if name != "user_id"}


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("user_id")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--model", type=Path, default=Path("data/models/churn_model.pkl"))
    parser.add_argument("--token", help="the API's bearer token, when it has one")
    args = parser.parse_args(argv)

    with args.model.open("rb") as fh:
        saved = pickle.load(fh)  # noqa: S301 - the model the training example saved here
    api = from_api(args.api, args.user_id, args.token)
    feast = through_feast(args.api, args.user_id)
    differ = sorted(name for name in api if not same(api[name], feast.get(name)))
    print(f"{args.user_id}: {len(api)} features from the API; through Feast's FeatureStore "
          f"{'the same' if not differ else 'different: ' + ', '.join(differ)}")  # fmt: skip
    inputs = model_inputs(pd.DataFrame([api]), saved["columns"])
    probability = saved["model"].predict_proba(inputs)[0, 1]
    print(f"churn probability {probability:.3f} (model ROC AUC {saved['auc']:.3f})")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
