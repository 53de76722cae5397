#!/usr/bin/python3
"""Regenerates the models and expected predictions the models package is
tested against: xgboost's own predict on thousands of rows, missing values
and split thresholds included.

    /usr/bin/python3 models/testdata/train.py   # Debian: python3-xgboost (1.7.4), python3-numpy

Writes, next to itself:
  fraud.json        binary:logistic, base_score 0.3, 6 named inputs
  amount.json       reg:squarederror, 3 unnamed inputs, deeper trees
  fraud_expected.csv, amount_expected.csv
                    the inputs (empty: missing), xgboost's margin and
                    its prediction, each float32 printed to round-trip
"""
import csv
import json
import os

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(19)


def data(n, k):
    # Four decimals, as amounts and averages come: few are float32 values,
    # so every row tests the rounding to float32 too.
    x = np.round(rng.normal(size=(n, k)), 4)
    x[:, 0] = np.round(rng.lognormal(3, 1.2, size=n), 2)  # an amount
    x[:, 1] = rng.integers(0, 40, size=n)                # a count
    return x


def with_missing(x, share):
    x = x.copy()
    x[rng.random(x.shape) < share] = np.nan
    return x


def thresholds(booster):
    """(feature, threshold) of every split, to test the edges."""
    out = []
    for tree in json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]:
        for i, left in enumerate(tree["left_children"]):
            if left != -1:
                out.append((tree["split_indices"][i], tree["split_conditions"][i]))
    return out


def edge_rows(booster, k, n):
    """Rows holding split thresholds exactly, and float64 values a hair
    away from them that round to the same float32: the comparison must be
    made in float32, as xgboost does."""
    splits = thresholds(booster)
    rows = with_missing(data(n, k), 0.1)
    for r in rows:
        for _ in range(3):
            f, t = splits[rng.integers(len(splits))]
            t = float(np.float32(t))
            r[f] = rng.choice([t, t * (1 + 1e-9), t * (1 - 1e-9), float(np.nextafter(np.float32(t), np.float32(-np.inf)))])
    return rows


def write(name, booster, x):
    d = xgb.DMatrix(x, missing=np.nan, feature_names=booster.feature_names)
    margin = booster.predict(d, output_margin=True)
    pred = booster.predict(d)
    with open(os.path.join(HERE, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([f"x{i}" for i in range(x.shape[1])] + ["margin", "prediction"])
        for row, m, p in zip(x, margin, pred):
            w.writerow(["" if np.isnan(v) else repr(float(v)) for v in row] +
                       [repr(float(np.float32(m))), repr(float(np.float32(p)))])


def main():
    # A fraud-like classifier: rare positives, missing values in training
    # too, so default directions are learnt both ways.
    k = 6
    x = with_missing(data(20000, k), 0.15)
    logit = (0.03 * np.nan_to_num(x[:, 0], nan=20) - 0.15 * np.nan_to_num(x[:, 1], nan=5)
             + 1.5 * np.nan_to_num(x[:, 2]) * np.nan_to_num(x[:, 3]) - 3)
    y = (rng.random(20000) < 1 / (1 + np.exp(-logit))).astype(int)
    names = ["event.amount", "features.card_txn_count_1h", "features.a", "features.b", "features.c", "event.d"]
    fraud = xgb.train({"objective": "binary:logistic", "base_score": 0.3, "max_depth": 5, "eta": 0.3, "seed": 1},
                      xgb.DMatrix(x, label=y, missing=np.nan, feature_names=names), num_boost_round=40)
    fraud.save_model(os.path.join(HERE, "fraud.json"))
    test = np.vstack([with_missing(data(3000, k), 0.2), edge_rows(fraud, k, 1000)])
    write("fraud_expected.csv", fraud, test)

    # A regression with deeper trees grown leaf by leaf.
    k = 3
    x = with_missing(data(5000, k), 0.1)
    y = np.nan_to_num(x[:, 0], nan=30) * (1 + 0.1 * np.nan_to_num(x[:, 2])) + rng.normal(size=5000)
    amount = xgb.train({"objective": "reg:squarederror", "max_depth": 9, "grow_policy": "lossguide", "max_leaves": 60,
                        "tree_method": "hist", "seed": 1},
                       xgb.DMatrix(x, label=y, missing=np.nan), num_boost_round=15)
    amount.save_model(os.path.join(HERE, "amount.json"))
    test = np.vstack([with_missing(data(1500, k), 0.2), edge_rows(amount, k, 500)])
    write("amount_expected.csv", amount, test)


if __name__ == "__main__":
    main()
