"""Everything that differs between SQLite and PostgreSQL, one module per concept."""
