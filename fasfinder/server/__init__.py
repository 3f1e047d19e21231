"""The office server: PostgreSQL schema and roles (schema.py), connection settings (connection.py),
the workstation replica's sync tables (replica.py), push/pull (sync.py) and applying pulled rows
(apply.py). Search never touches this package: it stays on the local SQLite + FAISS replica."""
