"""Independent read of netshare-synth outputs with pandas / pyarrow.

Usage: python3 check_outputs.py FILE...   (.parquet or .csv)

Prints one JSON object: per file name, the row count, the column names, integer column sums,
float column sums (rounded to 3 decimals), the min and max of the time column, and the label
counts. The Rust tests compute the same summary from their own tables and compare.
"""

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

TIME_COLUMNS = ("ts", "ts_us", "time", "time_us", "te", "Date first seen")
LABEL_COLUMNS = ("type", "label", "class")


def summarise(path: Path) -> dict:
    if path.suffix == ".parquet":
        # Key-value metadata of the file footer (where the schema name and dialect live).
        kv = pq.read_metadata(path).metadata or {}
        meta = {
            k.decode(): v.decode() for k, v in kv.items() if k.decode().startswith("netshare.")
        }
        df = pq.read_table(path).to_pandas()
    else:
        meta = {}
        df = pd.read_csv(path, keep_default_na=False)
    out = {
        "rows": int(len(df)),
        "columns": [str(c) for c in df.columns],
        "metadata": meta,
        "int_sums": {},
        "float_sums": {},
    }
    for c in df.columns:
        kind = df[c].dtype.kind
        if kind in "iu" and c not in TIME_COLUMNS:
            out["int_sums"][c] = int(df[c].astype("int64").sum()) if len(df) else 0
        elif kind == "f":
            out["float_sums"][c] = round(float(df[c].sum()), 3)
    for c in TIME_COLUMNS:
        if c in df.columns and df[c].dtype.kind in "iu" and len(df):
            out["time_min"] = int(df[c].min())
            out["time_max"] = int(df[c].max())
            break
    for c in LABEL_COLUMNS:
        if c in df.columns and df[c].dtype.kind == "O":
            counts = df[c].value_counts()
            out["labels"] = {str(k): int(v) for k, v in sorted(counts.items())}
            break
    return out


def main() -> None:
    result = {Path(p).name: summarise(Path(p)) for p in sys.argv[1:]}
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
