#!/usr/bin/python3
"""Trains bench/handbook/fraud.json, the handbook policy's fraud model, on
training data riskd itself exported (riskctl replay -features-out), and
picks its hyperparameters and its rule's points on a validation period:
nothing from 2018-07-25 on is read.

    /usr/bin/python3 bench/handbook/train/train.py /tmp/train.csv /tmp/val.csv
    # Debian: python3-xgboost (1.7.4), python3-sklearn (1.2.1), python3-pandas

train.csv: the export of 2018-04-01..07-24 (every checkout).
val.csv:   the export of 2018-07-11..07-24 on the handbook's protocol
           (-known-fraud customer_id -known-from 2018-06-27: the test
           week's protocol moved back four weeks).
The exact commands are in docs/replay.md.

1. Tune: train on 04-01..07-10, score 07-11..07-24 on the protocol, and
   choose the trees and the points the model rule adds to the rules'
   score (the policy blocks at 70), for the best average precision of
   rules + model whose block precision stays at 0.95 or more.
2. Retrain with what was chosen on all of 04-01..07-24 and save the model
   next to models.yaml.
"""
import itertools
import os
import sys

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
# The order models.yaml lists them in: the model is saved with these names
# and riskd refuses a models.yaml whose inputs are in another order.
INPUTS = [
    "event.amount",
    "features.customer_amount_avg_1d", "features.customer_txn_count_1d",
    "features.customer_amount_avg_7d", "features.customer_txn_count_7d",
    "features.customer_amount_avg_30d", "features.customer_txn_count_30d",
    "features.terminal_txn_count_7d", "features.terminal_txn_count_37d",
    "features.terminal_chargebacks_1d", "features.terminal_chargebacks_7d",
    "features.terminal_chargebacks_28d", "features.terminal_chargebacks_30d",
    "features.terminal_since_chargeback_s", "features.terminal_chargeback_streak_s",
    "features.customer_chargebacks_14d",
]
VALIDATION_FROM = pd.Timestamp("2018-07-11", tz="UTC").value // 10**6
TEST_FROM = pd.Timestamp("2018-07-25", tz="UTC").value // 10**6
BLOCK = 70  # checkout.yaml's block threshold


def train(df, depth, rounds, eta):
    d = xgb.DMatrix(df[INPUTS], label=df["label"], missing=np.nan, feature_names=INPUTS)
    params = {"objective": "binary:logistic", "max_depth": depth, "eta": eta,
              "tree_method": "hist", "nthread": 2, "seed": 19}
    return xgb.train(params, d, num_boost_round=rounds)


def predict(booster, df):
    return booster.predict(xgb.DMatrix(df[INPUTS], missing=np.nan, feature_names=INPUTS))


def policy(df, p, points, floor):
    """The policy's score and block call with the model rule
    `when: model.fraud > floor`, `score: round(points * model.fraud)`;
    rules that block (action: block) still do."""
    add = np.where(p > floor, np.round(points * p.astype(np.float64)), 0)
    score = df["score"].to_numpy() + add
    block = (df["decision"].to_numpy() == "block") | (score >= BLOCK)
    return score, block


def metrics(y, score, block):
    tp = int((block & (y == 1)).sum())
    return (roc_auc_score(y, score), average_precision_score(y, score),
            tp / max(1, int(block.sum())), tp / int((y == 1).sum()))


def main(train_csv, val_csv):
    df = pd.read_csv(train_csv)
    val = pd.read_csv(val_csv)
    assert df["ts"].max() < TEST_FROM and val["ts"].max() < TEST_FROM, "data from the test period"
    assert val["ts"].min() >= VALIDATION_FROM
    fit, y = df[df["ts"] < VALIDATION_FROM], val["label"].to_numpy()
    print("validation, rules alone: AUC %.3f AP %.3f block precision %.3f recall %.3f"
          % metrics(y, val["score"].to_numpy(), val["decision"].to_numpy() == "block"))
    best = None
    for depth, rounds, eta in itertools.product([3, 5], [30, 50], [0.1, 0.3]):
        p = predict(train(fit, depth, rounds, eta), val)
        print("depth %d rounds %d eta %.1f: model alone AUC %.3f AP %.3f"
              % (depth, rounds, eta, roc_auc_score(y, p), average_precision_score(y, p)))
        for points, floor in itertools.product([20, 30, 40, 50, 60, 70, 80, 100], [0, 0.1, 0.2, 0.3, 0.5]):
            m = metrics(y, *policy(val, p, points, floor))
            if m[2] >= 0.95 and (best is None or m[1] > best[0][1]):
                best = (m, depth, rounds, eta, points, floor, p)
    m, depth, rounds, eta, points, floor, p = best
    # Below 0.5 / points the rule would fire for no points.
    print("chosen: depth %d rounds %d eta %.1f; rule: when model.fraud >= %g, score round(%d * model.fraud)"
          % (depth, rounds, eta, max(floor, 0.5 / points), points))
    print("validation, rules + model: AUC %.3f AP %.3f block precision %.3f recall %.3f" % m)
    # The model alone (train/model-only.yaml) blocks from the lowest
    # probability whose block precision is 0.95 or more.
    for t in [0.5, 0.6, 0.7, 0.8, 0.9]:
        score = np.round(1000 * p.astype(np.float64))
        m = metrics(y, score, score >= 1000 * t)
        if m[2] >= 0.95:
            print("validation, model alone blocking at %.1f: AUC %.3f AP %.3f block precision %.3f recall %.3f" % ((t,) + m))
            break
    final = train(df, depth, rounds, eta)
    final.save_model(os.path.join(HERE, "..", "fraud.json"))
    print("trained on %d checkouts (%d fraud), 2018-04-01..07-24: bench/handbook/fraud.json"
          % (len(df), int(df["label"].sum())))


if __name__ == "__main__":
    main(*sys.argv[1:3])
