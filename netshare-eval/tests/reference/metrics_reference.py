#!/usr/bin/env python3
"""Independent reference values for netshare-eval's metrics, computed with numpy / scipy /
scikit-learn on the real UGR16 traces in fixtures/data (copies of ../shared/data).

Writes, next to this script:
  - ugr16-1k-perturbed.csv: a deterministic perturbation of netflow/ugr16-netshare-1k.csv
    (NetShare layout), used as a "synthetic" side;
  - metrics_expected.json: every value the Rust tests compare against.

Run from the repository root:  python3 netshare-eval/tests/reference/metrics_reference.py
Needs: numpy scipy scikit-learn pandas (pip install numpy scipy scikit-learn pandas).
"""

import json
import math
import os
import sys
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr, wasserstein_distance
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DATA = os.path.join(ROOT, "fixtures", "data")

PROTO = {"ICMP": 1, "IGMP": 2, "IPIP": 4, "TCP": 6, "UDP": 17, "IPV6": 41, "RSVP": 46,
         "GRE": 47, "ESP": 50, "AH": 51}


def proto_num(v):
    s = str(v).strip()
    return int(s) if s.isdigit() else PROTO[s.upper()]


def read_netshare(path):
    d = pd.read_csv(path)
    return pd.DataFrame({
        "srcip": d["srcip"].astype(np.int64), "dstip": d["dstip"].astype(np.int64),
        "srcport": d["srcport"].astype(np.int64), "dstport": d["dstport"].astype(np.int64),
        "proto": d["proto"].map(proto_num).astype(np.int64),
        "ts": d["ts"].astype(float), "td": d["td"].astype(float),
        "pkt": d["pkt"].astype(float), "byt": d["byt"].astype(float),
        "label": d["type"].astype(str),
    })


def ip_num(s):
    a, b, c, d = (int(x) for x in s.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def read_nfdump(path):
    d = pd.read_csv(path)
    te = [int(datetime.strptime(s, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()) * 1_000_000
          for s in d["te"]]
    td = d["td"].astype(float).to_numpy()
    ts = np.array(te, dtype=float) - np.floor(td * 1e6 + 0.5)
    return pd.DataFrame({
        "srcip": [ip_num(s) for s in d["sa"]], "dstip": [ip_num(s) for s in d["da"]],
        "srcport": d["sp"].astype(np.int64), "dstport": d["dp"].astype(np.int64),
        "proto": d["pr"].map(proto_num).astype(np.int64),
        "ts": ts, "td": td, "pkt": d["pkt"].astype(float), "byt": d["byt"].astype(float),
        "label": d["lable"].astype(str),
    })


def perturb(r):
    """A deterministic, field-by-field and joint perturbation (the 'synthetic' side)."""
    p = r.copy()
    i = np.arange(len(p))
    p["srcport"] = (p["srcport"] * 7 + 13) % 65536
    p.loc[i % 3 == 0, "dstport"] = (p.loc[i % 3 == 0, "dstport"] + 1) % 65536
    p.loc[i % 4 == 0, "srcip"] = p.loc[i % 4 == 0, "dstip"]
    p.loc[i % 10 == 0, "proto"] = 17
    p["td"] = p["td"] * 1.5
    p["pkt"] = p["pkt"] * 2
    p["byt"] = p["byt"] + 100
    p["ts"] = p["ts"] + i * 1000.0
    # Break part of the (dstport, proto) and (srcip, size) dependence by rolling columns.
    p["pkt"] = np.roll(p["pkt"].to_numpy(), 7)
    p["dstport"] = np.where(i % 5 == 0, np.roll(p["dstport"].to_numpy(), 11), p["dstport"])
    return p


NAMES = {1: "ICMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPv6", 47: "GRE", 50: "ESP"}


def write_netshare(p, path):
    out = pd.DataFrame({
        "srcip": p["srcip"], "dstip": p["dstip"], "srcport": p["srcport"], "dstport": p["dstport"],
        "proto": [NAMES[v] for v in p["proto"]], "ts": p["ts"].map(lambda v: repr(float(v))),
        "td": p["td"].map(lambda v: repr(float(v))), "pkt": p["pkt"].map(lambda v: repr(float(v))),
        "byt": p["byt"].map(lambda v: repr(float(v))), "type": p["label"],
    })
    out.to_csv(path, index=False)


# ---------- metric definitions (independent of the Rust code) ----------

def jsd2(p, q):
    return float(jensenshannon(p, q) ** 2)  # base e


def rank_vec(x):
    return np.sort(np.unique(x, return_counts=True)[1])[::-1].astype(float)


def rank_jsd(a, b):
    p, q = rank_vec(a), rank_vec(b)
    n = max(len(p), len(q))
    return jsd2(np.pad(p, (0, n - len(p))), np.pad(q, (0, n - len(q))))


def exact_jsd(a, b):
    keys = np.union1d(a, b)
    ca = pd.Series(a).value_counts().reindex(keys, fill_value=0).to_numpy(float)
    cb = pd.Series(b).value_counts().reindex(keys, fill_value=0).to_numpy(float)
    return jsd2(ca, cb)


def bin_jsd(a, b, bins):
    return jsd2(np.bincount(a, minlength=bins).astype(float), np.bincount(b, minlength=bins).astype(float))


def emd_sample(t, f):
    if f == "ts":
        return (t["ts"] - t["ts"].min()).to_numpy()
    return t[f].to_numpy()


def rescaled(u, v):
    lo, hi = min(u.min(), v.min()), max(u.max(), v.max())
    if hi <= lo:
        return np.full_like(u, 0.5), np.full_like(v, 0.5)
    return 0.1 + 0.8 * (u - lo) / (hi - lo), 0.1 + 0.8 * (v - lo) / (hi - lo)


def distributional(r, s, conv):
    out = {}
    for f in ["srcip", "dstip"]:
        j = rank_jsd(r[f], s[f]) if conv == "netshare" else exact_jsd(r[f].to_numpy(), s[f].to_numpy())
        out["jsd_" + f] = j if conv == "netshare" else math.sqrt(j)
    for f, bins in [("srcport", 65536), ("dstport", 65536), ("proto", 256)]:
        j = bin_jsd(r[f].to_numpy(), s[f].to_numpy(), bins)
        out["jsd_" + f] = j if conv == "netshare" else math.sqrt(j)
    for f in ["ts", "td", "pkt", "byt"]:
        u, v = emd_sample(r, f), emd_sample(s, f)
        if conv == "netdpsyn":
            u, v = rescaled(u, v)
        out["emd_" + f] = float(wasserstein_distance(u, v))
    return out


def ip_rank(ips):
    vc = pd.Series(ips).value_counts()
    order = sorted(vc.items(), key=lambda kv: (-kv[1], kv[0]))
    rank = {ip: i + 1 for i, (ip, _) in enumerate(order)}
    return np.array([rank[v] for v in ips], dtype=np.int64)


def log2_bin(v):
    return np.floor(np.log2(1.0 + np.maximum(np.asarray(v, float), 0.0))).astype(np.int64)


def port_code(p):
    p = np.asarray(p, np.int64)
    return np.where(p < 1024, p, 1024 + p // 4096)


def discrete(t):
    return [
        ("srcip_rank", log2_bin(ip_rank(t["srcip"].to_numpy()) - 1)),
        ("dstip_rank", log2_bin(ip_rank(t["dstip"].to_numpy()) - 1)),
        ("srcport", port_code(t["srcport"])), ("dstport", port_code(t["dstport"])),
        ("proto", t["proto"].to_numpy()),
        ("td", log2_bin(t["td"].to_numpy() * 1000.0)),
        ("pkt", log2_bin(t["pkt"])), ("byt", log2_bin(t["byt"])),
    ]


def joint(r, s):
    def dp(t):
        return (port_code(t["dstport"]) << 8) | t["proto"].to_numpy()

    def sp(t):
        return (port_code(t["srcport"]) << 16) | port_code(t["dstport"])

    def rs(t):
        return (log2_bin(ip_rank(t["srcip"].to_numpy()) - 1) << 32) | log2_bin(t["pkt"])

    fr, fs = discrete(r), discrete(s)
    mi = []
    for i in range(len(fr)):
        for j in range(i + 1, len(fr)):
            a = mutual_info_score(fr[i][1], fr[j][1])
            b = mutual_info_score(fs[i][1], fs[j][1])
            mi.append({"a": fr[i][0], "b": fr[j][0], "reference": a, "candidate": b, "abs_diff": abs(a - b)})
    return {
        "jsd_dstport_proto": exact_jsd(dp(r), dp(s)),
        "jsd_srcport_dstport": exact_jsd(sp(r), sp(s)),
        "jsd_srcip_rank_size": exact_jsd(rs(r), rs(s)),
        "mi_mean_abs_diff": float(np.mean([m["abs_diff"] for m in mi])),
    }, mi


def flow_samples(t):
    sizes, durs, gaps = [], [], []
    key = ["srcip", "dstip", "srcport", "dstport", "proto"]
    tt = t.assign(row=np.arange(len(t)))
    for _, g in tt.groupby(key, sort=False):
        g = g.sort_values(["ts", "row"], kind="stable")
        sizes.append(len(g))
        durs.append(((g["ts"] + g["td"] * 1e6).max() - g["ts"].iloc[0]) / 1e6)
        ts = g["ts"].to_numpy()
        gaps.extend(((ts[1:] - ts[:-1]) / 1e6).tolist())
    return sizes, durs, gaps


def flow_level(r, s):
    a, b = flow_samples(r), flow_samples(s)
    out = {}
    for k, name in enumerate(["emd_records_per_flow", "emd_flow_duration_s", "emd_flow_interarrival_s"]):
        out[name] = float(wasserstein_distance(a[k], b[k])) if len(a[k]) and len(b[k]) else None
    return out


def features(t):
    lo, hi = t["ts"].min(), t["ts"].max()
    span = hi - lo if hi > lo else 1.0
    cols = [np.log2(ip_rank(t["srcip"].to_numpy())), np.log2(ip_rank(t["dstip"].to_numpy())),
            port_code(t["srcport"]).astype(float), port_code(t["dstport"]).astype(float),
            t["proto"].to_numpy(float),
            (t["ts"].to_numpy() - lo) / span]
    cols += [np.log1p(np.maximum(t[f].to_numpy(), 0.0)) for f in ["td", "pkt", "byt"]]
    return np.column_stack(cols)


def compare(r, s):
    d_ns = distributional(r, s, "netshare")
    d_dp = distributional(r, s, "netdpsyn")
    j, mi = joint(r, s)
    return {"netshare": d_ns, "netdpsyn": d_dp, "joint": j, "mutual_information": mi,
            "flow": flow_level(r, s)}


def main():
    real = read_netshare(os.path.join(DATA, "netflow", "ugr16-netshare-1k.csv"))
    ref = read_netshare(os.path.join(DATA, "reference", "netshare-ref-ugr16-1k-syn.csv"))
    pert = perturb(real)
    write_netshare(pert, os.path.join(HERE, "ugr16-1k-perturbed.csv"))
    pert = read_netshare(os.path.join(HERE, "ugr16-1k-perturbed.csv"))
    host = read_nfdump(os.path.join(DATA, "netflow", "ugr16-day1-host-a.csv"))
    half = len(host) // 2
    first, second = host.iloc[:half].reset_index(drop=True), host.iloc[half:].reset_index(drop=True)

    out = {
        "generated_by": "netshare-eval/tests/reference/metrics_reference.py",
        "versions": {"numpy": np.__version__, "scipy": __import__("scipy").__version__,
                     "sklearn": __import__("sklearn").__version__, "pandas": pd.__version__},
        "comparisons": {
            "1k_vs_reference": compare(real, ref),
            "1k_vs_perturbed": compare(real, pert),
            "host_a_first_vs_second_half": compare(first, second),
        },
    }

    # ROC AUC and Spearman on real values: score = log1p(byt), positives = the perturbed rows.
    scores = np.concatenate([np.log1p(real["byt"]), np.log1p(pert["byt"])])
    truth = np.concatenate([np.zeros(len(real)), np.ones(len(pert))])
    out["roc_auc_log1p_byt_real_vs_perturbed"] = float(roc_auc_score(truth, scores))
    out["spearman_pkt_byt_host_a"] = float(spearmanr(host["pkt"], host["byt"]).statistic)

    # Gaussian naive Bayes: predict proto (traffic type) from the other features, trained on
    # the reference output and on host-a's first half, tested on the real rows.
    def nb_accuracy(train, test):
        xtr, xte = np.delete(features(train), 4, axis=1), np.delete(features(test), 4, axis=1)
        m = GaussianNB().fit(xtr, train["proto"].to_numpy())
        return float(np.mean(m.predict(xte) == test["proto"].to_numpy()))

    out["gaussian_nb_proto_accuracy"] = {
        "train_reference_test_1k": nb_accuracy(ref, real),
        "train_host_a_first_test_second": nb_accuracy(first, second),
    }
    # k-nearest neighbours (k = 5, brute force) on features standardised with the training
    # rows' mean and population standard deviation, same task.
    def knn_accuracy(train, test):
        xtr, xte = np.delete(features(train), 4, axis=1), np.delete(features(test), 4, axis=1)
        mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
        sd[sd == 0] = 1.0
        m = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit((xtr - mu) / sd, train["proto"].to_numpy())
        return float(np.mean(m.predict((xte - mu) / sd) == test["proto"].to_numpy()))

    out["knn5_proto_accuracy"] = {
        "train_reference_test_1k": knn_accuracy(ref, real),
        "train_host_a_first_test_second": knn_accuracy(first, second),
    }
    with open(os.path.join(HERE, "metrics_expected.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", os.path.join(HERE, "metrics_expected.json"), file=sys.stderr)


if __name__ == "__main__":
    main()
