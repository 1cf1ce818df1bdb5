"""Settings from the environment, prefix `SLOTGRAPH_`."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./data/slotgraph.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLOTGRAPH_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    bootstrap_secret_key: SecretStr | None = None
    # Connections per server process (PostgreSQL). SQLite serialises writers anyway.
    db_pool_size: int = 10
    db_max_overflow: int = 10
