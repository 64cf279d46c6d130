"""Dataclasses and async query functions: the only place SQL lives.

Every function takes the connection first, so the caller decides whether it
runs on the reader or inside a write transaction (tozo's style).
"""
