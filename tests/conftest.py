"""Shared test settings."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hypothesis import settings  # noqa: E402

# CI runs on 2 cores: bounded example counts and no deadline (timings are benchmarks' job).
settings.register_profile("dmoe", max_examples=60, deadline=None)
settings.load_profile("dmoe")
