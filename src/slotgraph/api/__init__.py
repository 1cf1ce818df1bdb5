"""HTTP: FastAPI routes and request parsing only; every route calls one service function."""
