"""Web tests: the API tests' app and clock (tests/api/conftest.py), plus page factories."""

from __future__ import annotations

from tests.api.conftest import Api, Clock, api, other_api

__all__ = ["Api", "Clock", "api", "other_api"]
