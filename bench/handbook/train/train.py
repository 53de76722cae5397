#!/usr/bin/python3
"""Trains the handbook policy's fraud model on training data riskd itself
exported (riskctl replay -features-out, from a policy with no model), and
chooses the model-first policy's rule points and block threshold on a
validation period: nothing from 2018-07-25 on is read.

    /usr/bin/python3 bench/handbook/train/train.py /tmp/train.csv /tmp/val.csv /tmp/fraud.json
    # Debian: python3-xgboost (1.7.4), python3-sklearn (1.2.1), python3-pandas, python3-yaml

train.csv: the export of 2018-04-01..07-24 (every checkout).
val.csv:   the export of 2018-07-11..07-24 on the handbook's protocol
           (-known-fraud customer_id -known-from 2018-06-27: the test
           week's protocol moved back four weeks).
fraud.json: where the new model is written; never the shipped
           bench/handbook/fraud.json (compare them: cmp).
The exact commands are in docs/replay.md.

1. Validate: train on 04-01..07-10 with PARAMS, score 07-11..07-24 on the
   protocol, and choose the points the hard-evidence rules add to the
   model's base (round(1000 * p)) and the block threshold, for the best
   average precision whose block precision stays at 0.95 or more.
2. Retrain with PARAMS on all of 04-01..07-24 and save the model.

PARAMS were chosen on the same validation period (docs/replay.md says
how); with one thread count and a seed, xgboost's hist method is
deterministic: the same export gives the same model, byte for byte.
"""
import hashlib
import itertools
import os
import sys

import numpy as np
import pandas as pd
import xgboost as xgb
import yaml
from sklearn.metrics import average_precision_score, roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED = os.path.realpath(os.path.join(HERE, "..", "fraud.json"))
VALIDATION_FROM = pd.Timestamp("2018-07-11", tz="UTC").value // 10**6
TEST_FROM = pd.Timestamp("2018-07-25", tz="UTC").value // 10**6
PARAMS = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 5,
          "eta": 0.1, "seed": 19, "nthread": 2}
ROUNDS = 300
SCALE = 1000  # checkout.yaml's base: {model: fraud, scale: 1000}


def inputs():
    """The model's inputs, in models.yaml's order, as the export names
    their columns: features and event fields by name, derived inputs as
    <model>.<name>."""
    with open(os.path.join(HERE, "models.yaml")) as f:
        (m,) = yaml.safe_load(f)["models"]
    return [i if isinstance(i, str) else m["name"] + "." + i["name"] for i in m["inputs"]]


INPUTS = inputs()


def train(df):
    d = xgb.DMatrix(df[INPUTS], label=df["label"], missing=np.nan, feature_names=INPUTS)
    return xgb.train(PARAMS, d, num_boost_round=ROUNDS)


def predict(booster, df):
    return booster.predict(xgb.DMatrix(df[INPUTS], missing=np.nan, feature_names=INPUTS))


def fired(df, rule):
    return df["rules"].fillna("").str.split().apply(lambda ids: rule in ids).to_numpy()


def metrics(y, score, block):
    tp = int((block & (y == 1)).sum())
    return (roc_auc_score(y, score), average_precision_score(y, score),
            tp / max(1, int(block.sum())), tp / int((y == 1).sum()))


def main(train_csv, val_csv, out):
    if os.path.realpath(out) == SHIPPED:
        sys.exit("train.py: writes a new model; compare it with the shipped one rather than overwriting it")
    df = pd.read_csv(train_csv)
    val = pd.read_csv(val_csv)
    df, val = df[df["type"] == "checkout"], val[val["type"] == "checkout"]
    assert df["ts"].max() < TEST_FROM and val["ts"].max() < TEST_FROM, "data from the test period"
    assert val["ts"].min() >= VALIDATION_FROM
    assert (df["score"] == df["score"].round()).all() and not df["rules"].fillna("").str.contains("model").any(), \
        "exported with a model in the policy"
    y = val["label"].to_numpy()
    print("validation %d checkouts (%d fraud)" % (len(val), y.sum()))
    print("validation, rules alone: AUC %.3f AP %.3f block precision %.3f recall %.3f"
          % metrics(y, val["score"].to_numpy(), val["decision"].to_numpy() == "block"))
    p = predict(train(df[df["ts"] < VALIDATION_FROM]), val).astype(np.float64)
    base = np.round(SCALE * p)
    print("validation, model alone: AUC %.3f AP %.3f" % (roc_auc_score(y, p), average_precision_score(y, p)))
    for t in range(500, 1000, 100):
        m = metrics(y, base, base >= t)
        if m[2] >= 0.95:
            print("validation, model alone blocking at %d: AUC %.3f AP %.3f block precision %.3f recall %.3f" % ((t,) + m))
            break
    # Model-first: amount_over_limit blocks (and adds the whole scale, so
    # it ranks first); terminal_compromised and amount_spike add points.
    limit = fired(val, "amount_over_limit")
    compromised, spike = fired(val, "terminal_compromised"), fired(val, "amount_spike")
    best = None
    for pc, ps, block in itertools.product([0, 50, 100, 200, 300], [0, 50, 100, 200, 300], range(500, 1000, 100)):
        score = base + SCALE * limit + pc * compromised + ps * spike
        m = metrics(y, score, limit | (score >= block))
        if m[2] >= 0.95 and (best is None or m[1:2] + m[3:] > best[0][1:2] + best[0][3:]):
            best = (m, pc, ps, block)
    m, pc, ps, block = best
    print("chosen: terminal_compromised +%d, amount_spike +%d, block at %d" % (pc, ps, block))
    print("validation, model-first: AUC %.3f AP %.3f block precision %.3f recall %.3f" % m)
    final = train(df)
    final.save_model(out)
    with open(out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print("trained on %d checkouts (%d fraud), 2018-04-01..07-24: %s, sha256 %s"
          % (len(df), int(df["label"].sum()), out, digest))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: train.py train.csv val.csv new-model.json")
    main(*sys.argv[1:4])
