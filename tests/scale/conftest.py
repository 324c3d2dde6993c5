"""One local Ray (2 CPUs) for every Ray test of the session: starting one takes seconds on this machine."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray():
    ray = pytest.importorskip("ray", reason="the scale extra (ray) is not installed: pip install 'e5kit[scale]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
