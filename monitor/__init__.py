"""wire-monitor: watch news and wire feeds, match analyst rules, alert once per story."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/wire-monitor/wire-monitor"
