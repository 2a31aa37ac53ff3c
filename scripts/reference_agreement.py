"""Writes vote matrices and the reference implementations' statistics on them (see reference-agreement)."""
import json
import sys
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
from crowdkit.aggregation import DawidSkene, MajorityVote
from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_recall_fscore_support
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa


def make_case(seed, items, judges, labels, accuracies, missing):
    """Items with a true label, and each judge's vote: right with its accuracy, else a random
    other label; a vote is missing with probability `missing`."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(labels, size=items, p=None)
    votes = []
    for i in range(items):
        row = {}
        for judge, accuracy in zip(judges, accuracies):
            if rng.random() < missing:
                continue
            if rng.random() < accuracy:
                row[judge] = str(truth[i])
            else:
                row[judge] = str(rng.choice([l for l in labels if l != truth[i]]))
        votes.append(row)
    return [str(t) for t in truth], votes


def reference(truth, votes, judges, weights):
    out = {"cohen_kappa": {}, "confusion": {}, "accuracy": {}}
    labels = sorted({l for row in votes for l in row.values()} | set(truth))
    for judge in judges:
        pairs = [(truth[i], row[judge]) for i, row in enumerate(votes) if judge in row]
        human = [p[0] for p in pairs]
        judged = [p[1] for p in pairs]
        kappa = cohen_kappa_score(human, judged)
        out["cohen_kappa"][judge] = None if np.isnan(kappa) else float(kappa)
        out["accuracy"][judge] = float(np.mean([a == b for a, b in pairs]))
        # Rows are people's labels, columns the judge's, both in `labels` order.
        out["confusion"][judge] = confusion_matrix(human, judged, labels=labels).tolist()
    out["labels"] = labels

    full = [row for row in votes if len(row) == len(judges)]
    if full:
        table, categories = aggregate_raters(np.array([[row[j] for j in judges] for row in full]))
        out["fleiss_kappa"] = float(fleiss_kappa(table, method="fleiss"))
    reliability = [[row.get(j, np.nan) for row in votes] for j in judges]
    out["krippendorff_alpha"] = float(krippendorff.alpha(
        reliability_data=_codes(reliability, labels), level_of_measurement="nominal"))

    frame = pd.DataFrame(
        [(i, j, l) for i, row in enumerate(votes) for j, l in row.items()], columns=["task", "worker", "label"])
    majority = MajorityVote()
    probas = majority.fit_predict_proba(frame)
    out["majority_vote"] = _per_task(probas, majority.labels_, len(votes))
    # Per-label precision and recall of the majority-vote labels against people's, over the tasks
    # with one most voted label (crowd-kit breaks ties by the order labels first occur; Jury by name).
    def clear_top(row):
        counts = sorted(pd.Series(list(row.values())).value_counts().tolist(), reverse=True)
        return len(counts) == 1 or counts[0] > counts[1]
    voted = [t for t in range(len(votes)) if votes[t] and clear_top(votes[t])]
    precision, recall, _, _ = precision_recall_fscore_support(
        [truth[t] for t in voted], [str(majority.labels_.loc[t]) for t in voted], labels=labels, zero_division=0)
    out["majority_vote_per_label"] = {l: {"precision": float(p), "recall": float(r)}
                                      for l, p, r in zip(labels, precision, recall)}
    weighted = MajorityVote()
    probas = weighted.fit_predict_proba(frame, skills=pd.Series(weights))
    out["weighted_majority_vote"] = _per_task(probas, weighted.labels_, len(votes))
    ds = DawidSkene(n_iter=100, tol=1e-5)
    probas = ds.fit_predict_proba(frame)
    out["dawid_skene"] = _per_task(probas, ds.labels_, len(votes))
    return out


def _codes(reliability, labels):
    # krippendorff takes numbers with NaN for missing; nominal alpha does not depend on the coding.
    code = {l: float(n) for n, l in enumerate(labels)}
    return [[code[v] if isinstance(v, str) else np.nan for v in row] for row in reliability]


def _per_task(probas, chosen, items):
    result = []
    for task in range(items):
        if task not in probas.index:
            result.append(None)
            continue
        row = probas.loc[task]
        result.append({"label": str(chosen.loc[task]),
                       "posterior": {str(k): float(v) for k, v in row.items() if v > 0}})
    return result


def main(folder):
    labels = ["valid", "needs_more_context", "missing_capability", "wrong_skill", "ambiguous"]
    cases = {
        "four-judges-five-labels": dict(seed=7, items=300, judges=["alpha", "bravo", "charlie", "delta"],
                                        labels=labels, accuracies=[0.92, 0.88, 0.9, 0.7], missing=0.05),
        "three-judges-two-labels": dict(seed=11, items=120, judges=["a", "b", "c"], labels=["no", "yes"],
                                        accuracies=[0.8, 0.75, 0.6], missing=0.0),
        "five-judges-sparse": dict(seed=3, items=80, judges=["j1", "j2", "j3", "j4", "j5"], labels=labels[:3],
                                   accuracies=[0.95, 0.6, 0.85, 0.5, 0.9], missing=0.3),
    }
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, case in cases.items():
        truth, votes = make_case(case["seed"], case["items"], case["judges"], case["labels"],
                                 case["accuracies"], case["missing"])
        weights = {j: round(0.5 + a, 2) for j, a in zip(case["judges"], case["accuracies"])}
        fixture = {"judges": case["judges"], "human": truth, "votes": votes, "weights": weights,
                   "expected": reference(truth, votes, case["judges"], weights)}
        with open(Path(folder) / f"{name}.json", "w") as f:
            json.dump(fixture, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"wrote {name}.json")


if __name__ == "__main__":
    main(sys.argv[1])
