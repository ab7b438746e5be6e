"""The one energy/airtime function and the one top-D mask, against hand values and brute force."""

import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from dmoe.scheduler import link_energy_airtime, top_d_mask


def test_energy_and_airtime_of_a_link_are_power_times_subcarriers_times_bits_over_rate():
    rate = np.array([[[1e6, 2e6, 4e6]]])                       # [T=1, K=1, N=3] bit/s
    mask = np.array([[[True, False, True]]])
    energy, airtime = link_energy_airtime(rate, mask, payload_bits=1000, power_w=0.01)
    assert airtime[0, 0] == pytest.approx(1000 / 5e6)
    assert energy[0, 0] == pytest.approx(0.01 * 2 * 1000 / 5e6)


def test_a_link_without_subcarriers_costs_nothing_and_one_without_rate_never_ends():
    rate = np.array([[[0.0, 0.0], [3e6, 0.0]]])                # [T=1, K=2, N=2]
    energy, airtime = link_energy_airtime(rate, np.array([[[True, True], [False, False]]]),
                                          payload_bits=100, power_w=1.0)
    # Zero rate on its subcarriers: the payload never gets through (inf), not "B / 1".
    assert np.isinf(airtime[0, 0]) and np.isinf(energy[0, 0])
    assert airtime[0, 1] == 0.0 and energy[0, 1] == 0.0


@given(st.integers(1, 6).flatmap(lambda k: st.tuples(
    st.lists(st.sampled_from([0.0, 1.0, 2.0, 4.0]), min_size=k, max_size=k),  # exact sums
    st.integers(0, k))))
def test_top_d_mask_is_a_most_relevant_set_with_ties_to_the_lower_index(case):
    relevance, d = np.array(case[0]), case[1]
    mask = top_d_mask(relevance[None], d)[0]
    best = max((sum(relevance[list(s)]), tuple(-i for i in s))
               for s in itertools.combinations(range(len(relevance)), d))
    assert mask.sum() == d
    assert tuple(-i for i in np.flatnonzero(mask)) == best[1]


def test_top_d_mask_rejects_a_d_beyond_k():
    with pytest.raises(ValueError, match="d must be an int in"):
        top_d_mask(np.ones((2, 3)), 4)
