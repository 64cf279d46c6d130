"""The handler tests run on both engines: the app on SQLite, then on a
fresh PostgreSQL database of the session's private cluster."""
from tests.conftest import both_engines

engine = both_engines
