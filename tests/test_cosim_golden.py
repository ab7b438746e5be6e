"""The engine's rows, bit for bit, against a table recorded from an earlier version of it.

The table (``tests/data/golden_rows.json``, written by ``tests/golden_study.py``) pins every
deterministic column of a small study: digits and gate-trace MoEs, drop and corrupt, PHY
abstraction, bit-true links and ideal links, common and layer-wise schemes. A reorganisation of
the engine must leave it unchanged; timing columns are left out.
"""

import json

from golden_study import GOLDEN_PATH, POINTS, golden_rows, same

#: Columns a later version may add to every row (settings that did not exist when the table
#: was recorded, at values that reproduce it).
ADDED_COLUMNS = {"channel.los", "channel.indoor_probability"}


def test_small_study_reproduces_the_golden_table_bit_for_bit():
    with open(GOLDEN_PATH) as handle:
        expected = json.load(handle)
    actual = golden_rows()
    assert len(actual) == len(expected) == len(POINTS)
    for point, (want_rows, got_rows) in enumerate(zip(expected, actual)):
        assert [r["scheme"] for r in got_rows] == [r["scheme"] for r in want_rows]
        for want, got in zip(want_rows, got_rows):
            assert set(got) - set(want) <= ADDED_COLUMNS, (point, set(got) - set(want))
            for column, value in want.items():
                assert column in got, (point, want["scheme"], column)
                assert same(got[column], value), (point, want["scheme"], column, got[column],
                                                  value)
