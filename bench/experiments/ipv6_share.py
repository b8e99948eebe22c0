"""IPv6 share of synthetic packet captures, read with pyarrow (independently of the Rust readers).

Usage: python3 ipv6_share.py DIR [DIR ...], where each DIR holds a synthetic.parquet written by
`cargo xtask reproduce bench/experiments/mixed-v6-share.toml --out DIR`. Prints each file's share
of packets and of five-tuples that are IPv6, then the share pooled over all files.
"""

import sys

import pyarrow.parquet as pq


def shares(path):
    t = pq.read_table(path, columns=["srcip", "dstip", "srcport", "dstport", "proto", "ip_version"])
    d = t.to_pydict()
    n = len(d["ip_version"])
    v6 = sum(1 for v in d["ip_version"] if v == 6)
    keys = set(zip(d["srcip"], d["dstip"], d["srcport"], d["dstport"], d["proto"], d["ip_version"]))
    v6_keys = sum(1 for k in keys if k[5] == 6)
    return n, v6, len(keys), v6_keys


def main():
    total = total_v6 = 0
    for d in sys.argv[1:]:
        n, v6, k, k6 = shares(f"{d}/synthetic.parquet")
        total, total_v6 = total + n, total_v6 + v6
        print(f"{d}: {n} packets, IPv6 {100 * v6 / n:.1f}%; {k} five-tuples, IPv6 {100 * k6 / k:.1f}%")
    if total:
        print(f"pooled: {total} packets, IPv6 {100 * total_v6 / total:.1f}%")


if __name__ == "__main__":
    main()
