"""The webhook channel: signing, the SSRF guard, and one HTTP attempt. Imports nothing from
services/: the worker (slotgraph/worker.py) drives it through services/deliveries.py."""
