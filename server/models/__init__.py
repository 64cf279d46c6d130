"""Dataclasses and query functions: the only place SQL lives.

Every function is a plain (synchronous) function of a `db.Connection` and
its arguments, one query each (or a few that belong together, named for what
they do), so a caller hands it to `db.read` or `db.write` as it is, or
composes several in one function of its own that runs as one transaction
(tozo's style, run on the database thread as datasette's execute_fn does).
The SQL is written once for every engine: `?` placeholders and constructs
SQLite and PostgreSQL share; what differs is server/dialect.py's.
"""
