"""The daemon's config values are checked as a whole, from the file and the command line alike,
before anything reaches the switch: one ConfigError naming the value."""

from __future__ import annotations

import math

import pytest
from p4splice.controller.config import ConfigError, ControllerConfig, parse_config, validated


@pytest.mark.parametrize(("section", "fragment"), [
    ({"cpu_port": 0}, "controller.cpu_port: 0 is not a switch port 1-511"),
    ({"cpu_port": 512}, "controller.cpu_port: 512"),
    ({"idle_timeout": math.inf}, "controller.idle_timeout must be a non-negative, finite number"),
    ({"hold_timeout": math.nan}, "controller.hold_timeout must be a non-negative, finite number"),
    ({"metrics": {"port": 70000}}, "controller.metrics.port: 70000 is not a TCP port 0-65535"),
    ({"metrics": {"port": -5}}, "controller.metrics.port: -5"),
    ({"services": [{"server": "10.0.2.1:0", "proxy_port": 3}]}, "port 0 is not 1-65535"),
    ({"overload_lag": 5}, "controller.overload_lag must be 0 (never) to 4 seconds"),
    ({"overload_lag": -1}, "controller.overload_lag"),
    ({"overload_lag": math.nan}, "controller.overload_lag"),
    ({"overload_evictions": -1}, "controller.overload_evictions"),
    ({"overload_evictions": math.inf}, "controller.overload_evictions"),
])
def test_a_bad_value_is_named(section: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_config(section)


def test_good_values_pass_and_the_command_lines_too() -> None:
    cfg = parse_config({"cpu_port": 64, "idle_timeout": 0, "metrics": {"port": 0}, "overload_lag": 0.5})
    assert (cfg.cpu_port, cfg.idle_timeout, cfg.metrics_port, cfg.overload_lag) == (64, 0.0, 0, 0.5)
    with pytest.raises(ConfigError, match="cpu_port: -1"):
        validated(ControllerConfig().with_(cpu_port=-1))  # what splicectl run --cpu-port -1 gives
