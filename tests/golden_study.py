"""The small study whose rows are pinned in ``tests/data/golden_rows.json``.

``python tests/golden_study.py`` rewrites the file; only do that when a change of results is
intended (and say why in the commit).
"""

import json
import math
import os
import sys

from dmoe.cosim import NONDETERMINISTIC_COLUMNS, run_point

GOLDEN_PATH = os.path.join(os.path.dirname(__file__), "data", "golden_rows.json")

_COMMON = {"num_tokens": 24, "seed": 7,
           "schemes": ["des", "jesa", "top_k", "random", "des_layerwise", "jesa_layerwise"],
           "layer_importance": [0.6, 0.95]}

#: Points of the study: default digits model, drop and corrupt at a lossy SNR, two powers,
#: ideal links, a bit-true link point and the gate trace.
POINTS = [
    {**_COMMON, "importance": 0.8,
     "channel": {"distances_m": [300.0] * 8, "tx_power_dbm": 5.0}},
    {**_COMMON, "importance": 0.8, "phy": {"on_failure": "corrupt"},
     "channel": {"distances_m": [300.0] * 8, "tx_power_dbm": 5.0}},
    {**_COMMON, "importance": 0.95, "channel": {"tx_power_dbm": 15.0, "speed_mps": 3.0}},
    {**_COMMON, "schemes": ["top_k", "wlr", "channel_only"], "phy": {"fidelity": "ideal"}},
    {"num_tokens": 8, "seed": 7, "schemes": ["des", "top_k"], "phy": {"fidelity": "link"},
     "channel": {"num_subcarriers": 16, "distances_m": [200.0] * 8, "tx_power_dbm": 0.0}},
    {**_COMMON, "moe": {"task": "trace"}, "phy": {"on_failure": "corrupt"},
     "channel": {"distances_m": [300.0] * 8, "tx_power_dbm": 5.0}},
]


def golden_rows():
    """Rows of every point, timing columns left out: [[row, ...], ...]."""
    return [[{key: value for key, value in row.items() if key not in NONDETERMINISTIC_COLUMNS}
             for row in run_point(point)] for point in POINTS]


def same(a, b):
    """Equal, with NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


if __name__ == "__main__":
    rows = golden_rows()
    with open(GOLDEN_PATH, "w") as handle:
        json.dump(rows, handle, indent=1, sort_keys=True)
        handle.write("\n")
    print(f"wrote {sum(map(len, rows))} rows to {GOLDEN_PATH}", file=sys.stderr)
