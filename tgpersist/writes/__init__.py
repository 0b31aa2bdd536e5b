"""Small writes as the group-commit writer runs them: the writer (`group_commit`), and one `Kind`
per sort of write (`dedup`, `queue`, `upserts`), set-based where it can."""
