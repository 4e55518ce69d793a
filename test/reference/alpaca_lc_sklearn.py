"""AlpacaEval 2.0's length_controlled_v1 fit, rebuilt on scikit-learn's liblinear for dno's tests.

Reads the three files in AlpacaEval's formats (annotations.json, df_gamed.csv, optionally nothing else),
builds the same design (gamed rows first, weight lambda/2, model rows weight 1, soft labels as the
duplicated-row trick), chooses C from logspace(-4, 4, 10) by 5-fold cross-validation on the weighted
soft log loss (row i of the fitted rows in fold i mod 5) and prints one JSON object with the LC win
rate and its standard error in percent. Usage: python3 alpaca_lc_sklearn.py annotations.json df_gamed.csv TOL
"""
import csv
import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression


def soft_fit(X, p, s, C, tol):
    X2 = np.vstack([X, X])
    y2 = np.concatenate([np.ones(len(p)), np.zeros(len(p))])
    w2 = np.concatenate([p * s, (1 - p) * s])
    keep = w2 > 0
    model = LogisticRegression(penalty="l1", solver="liblinear", fit_intercept=False, C=C, tol=tol, max_iter=100000)
    model.fit(X2[keep], y2[keep], sample_weight=w2[keep])
    return model.coef_[0]


def weighted_logloss(X, p, s, w):
    q = np.clip(1 / (1 + np.exp(-X @ w)), 1e-15, 1 - 1e-15)
    return -np.mean(s * (p * np.log(q) + (1 - p) * np.log(1 - q)))


def main(annotations_path, gamed_path, tol):
    with open(annotations_path) as f:
        annotations = json.load(f)
    with open(gamed_path) as f:
        gamed = list(csv.DictReader(f))
    difficulty = {}
    for r in gamed:
        difficulty.setdefault(int(r["index"]), float(r["instruction_difficulty"]))
    delta = np.array([len(a["output_1"]) - len(a["output_2"]) for a in annotations], dtype=float)
    std_delta = delta / delta.std(ddof=1)
    pref = [a.get("preference") for a in annotations]
    pref = [None if v is None else (1.5 if v == 0 else v) - 1 for v in pref]
    diff = np.array([difficulty[i] for i in range(len(annotations))])

    rows, labels, weights = [], [], []
    for r in gamed:
        if r["preference"] == "":
            continue
        ngb = r["not_gamed_baseline"] == "True"
        rows.append([np.tanh(float(r["std_delta_len"])), float(r["instruction_difficulty"]), float(ngb)])
        labels.append(float(r["preference"]))
        weights.append(1.0 if ngb else 0.1)
    for i, v in enumerate(pref):
        if v is None:
            continue
        rows.append([np.tanh(std_delta[i]), diff[i], 1.0])
        labels.append(v)
        weights.append(1.0)
    X, p, s = np.array(rows), np.array(labels), np.array(weights)

    Cs = np.logspace(-4, 4, 10)
    folds = np.arange(len(p)) % 5
    loss = np.zeros(len(Cs))
    for f in range(5):
        train, test = folds != f, folds == f
        for c, C in enumerate(Cs):
            w = soft_fit(X[train], p[train], s[train], C, tol)
            loss[c] += weighted_logloss(X[test], p[test], s[test], w) / 5
    C = Cs[int(np.argmin(loss))]
    w = soft_fit(X, p, s, C, tol)
    predicted = 1 / (1 + np.exp(-(w[1] * diff + w[2])))
    print(json.dumps({
        "length_controlled_winrate": predicted.mean() * 100,
        "lc_standard_error": predicted.std(ddof=1) / np.sqrt(len(predicted)) * 100,
        "C": C,
        "w": w.tolist(),
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
