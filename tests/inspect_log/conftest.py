"""The inspection log's fixtures (`postgres_server`, `log_url`: a SQLite file and a real PostgreSQL server) live in
tests/log_backends.py, loaded by tests/conftest.py, so tests/serve runs on both backends too."""
