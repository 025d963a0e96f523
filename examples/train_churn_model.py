"""Train a churn model on the platform's training set: the step after `make training-set`.

    uv sync --group examples        # or: make setup-examples
    python examples/train_churn_model.py [--training-set data/processed/training_df.csv]

Every month but the last trains, the last evaluates (as the model would meet next month's users);
it prints the ROC AUC on that month and each feature's importance (the AUC lost when the feature
is shuffled), and saves the model with the columns it expects (for examples/score_online.py) and
a plot of the importances. The features are the training set's columns as Feast wrote them,
point-in-time correct: nothing here joins or cleans anything."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_auc_score

NOT_FEATURES = ("user_id", "event_timestamp", "churn_label")


def model_inputs(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Numbers for the model: booleans as 0/1, text one-hot; NaN stays NaN (the model takes it).
    With `columns` (the training's), the same columns in the same order, absent ones 0."""
    features = frame.drop(columns=[c for c in NOT_FEATURES if c in frame.columns])
    for name in features.columns:
        if features[name].dtype == bool or features[name].dtype == "boolean":
            features[name] = features[name].astype("float64")
    encoded = pd.get_dummies(features, dummy_na=False, dtype="float64")
    return encoded if columns is None else encoded.reindex(columns=columns, fill_value=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--training-set", type=Path, default=Path("data/processed/training_df.csv"))
    parser.add_argument("--out", type=Path, default=Path("data/models"), help="where the model and plot go")
    args = parser.parse_args(argv)

    data = pd.read_csv(args.training_set, parse_dates=["event_timestamp"])
    data = data.dropna(subset=["churn_label"])
    months = sorted(data["event_timestamp"].unique())
    if len(months) < 2:
        parser.error(f"{args.training_set} holds {len(months)} month(s): training needs two or more")
    train, test = data[data["event_timestamp"] < months[-1]], data[data["event_timestamp"] == months[-1]]
    x_train = model_inputs(train)
    x_train = x_train.loc[:, x_train.notna().any()]  # a trend of the first month has no month before
    x_test = model_inputs(test, list(x_train.columns))
    model = HistGradientBoostingClassifier(random_state=0).fit(x_train, train["churn_label"].astype(int))
    auc = roc_auc_score(test["churn_label"].astype(int), model.predict_proba(x_test)[:, 1])
    print(f"trained on {len(train):,} rows ({len(months) - 1} month(s)), evaluated on {len(test):,} "
          f"({pd.Timestamp(months[-1]).date()}): ROC AUC {auc:.3f}")  # fmt: skip

    shuffled = permutation_importance(
        model, x_test, test["churn_label"].astype(int), scoring="roc_auc", n_repeats=3, random_state=0
    )
    importance = pd.Series(shuffled.importances_mean, index=x_test.columns).sort_values(ascending=False)
    print("importance (ROC AUC lost when the feature is shuffled):")
    for name, value in importance.head(10).items():
        print(f"  {name:<40} {value:.4f}")

    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "churn_model.pkl").open("wb") as fh:
        pickle.dump({"model": model, "columns": list(x_train.columns), "auc": auc}, fh)
    figure, axes = plt.subplots(figsize=(8, 6))
    importance.head(15)[::-1].plot.barh(ax=axes)
    axes.set_xlabel("ROC AUC lost when shuffled")
    axes.set_title(f"Churn model: feature importance (AUC {auc:.3f})")
    figure.tight_layout()
    figure.savefig(args.out / "feature_importance.png", dpi=100)
    print(f"saved {args.out / 'churn_model.pkl'} and {args.out / 'feature_importance.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
