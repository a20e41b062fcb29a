"""warning-service: 预警叫应 — issue early warnings and prove every responsible person answered."""

__version__ = "0.1.0"
