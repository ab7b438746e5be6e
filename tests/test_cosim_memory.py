"""A point whose arrays cannot fit is refused before anything is allocated or written, and
``run_point`` reports a bad config in the CLI's one line."""

import re

import numpy as np
import pytest
from pydantic import ValidationError

from dmoe.cosim import run_point
from dmoe.cosim.cli import main
from dmoe.cosim.memory import check_point_memory, estimate_point_memory
from dmoe.cosim.models import channel_config, load_model
from dmoe.cosim.study import load_study


def test_a_point_of_a_trillion_tokens_is_refused_before_anything_is_written(tmp_path, capsys):
    config = tmp_path / "huge.toml"
    config.write_text('num_tokens = 1000000000000\nschemes = ["des"]\n')
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "num_tokens" in error and "execution.chunk_size to at most" in error
    assert not out.exists()
    with pytest.raises(ValueError, match="execution.chunk_size"):
        run_point({"num_tokens": 10**12, "schemes": ["des"]})


def test_the_suggested_chunk_size_fits_and_the_estimate_counts_real_arrays():
    from dmoe.phy import sample_links
    whole = {"num_tokens": 10**6, "schemes": ["des"], "execution": {"chunk_size": 10**6}}
    (point,) = load_study(whole).points
    model = load_model(point.config.moe)
    limit = 2 * 2**30
    with pytest.raises(ValueError, match=r"chunk_size to at most \d+") as info:
        check_point_memory(point.config, model, limit_bytes=limit)
    chunk = int(re.search(r"chunk_size to at most (\d+)", str(info.value)).group(1))
    (chunked,) = load_study({**whole, "execution": {"chunk_size": chunk}}).points
    fits = check_point_memory(chunked.config, model, limit_bytes=limit)
    assert fits.chunk_tokens == chunk and fits.total_bytes <= limit

    # The per-chunk count is what a chunk certainly holds: the distinct link arrays (perfect
    # CSI: the views share the true SNR) and the payloads of both phases.
    tokens = 32
    links = sample_links(channel_config(point.config, model.num_layers), batch_size=tokens,
                         num_links=model.num_experts)
    arrays = [value for value in vars(links).values()
              if isinstance(value, np.ndarray) and value.ndim == 4]
    distinct = [a for i, a in enumerate(arrays)
                if not any(np.shares_memory(a, b) for b in arrays[:i])]
    payload = model.to_bits(model.embed(model.test_data()[0][:tokens]),
                            point.config.moe.bits_per_value)
    counted = estimate_point_memory(point.config, model).bytes_per_chunk_token
    assert counted * tokens == sum(a.nbytes for a in distinct) + \
        2 * model.num_experts * payload.shape[0] * payload.shape[1]


def test_run_point_reports_a_bad_config_in_one_line():
    with pytest.raises(ValueError) as info:
        run_point({"importance": 2.0, "bogus": 1})
    assert not isinstance(info.value, ValidationError)
    text = str(info.value)
    assert "\n" not in text and "'importance' = 2.0" in text and "'bogus'" in text
    with pytest.raises(TypeError, match="StudyConfig or a dict"):
        run_point("num_tokens = 3")
