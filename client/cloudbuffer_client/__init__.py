"""CloudBuffer's command-line client and clipboard agent.

It talks to a server over its public HTTP API and /ws only, and imports
nothing from the server package, so it installs on its own (client/pyproject.toml).
"""
__version__ = "0.1.0"
