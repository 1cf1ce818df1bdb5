"""Database: models, engine per backend, named queries, migrations."""
