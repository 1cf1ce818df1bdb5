"""slotgraph: a self-hostable booking engine."""

__version__ = "0.1.0"
