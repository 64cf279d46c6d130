"""The live socket, /ws: it pushes every buffer change to each of a user's
devices (docs/protocol.md, docs/architecture.md's Live sync).

- protocol: what a client message means and what is sent back, no socket;
- connection: the ASGI socket, its handshake and the pump that serves it;
- keepalive: the worker's periodic care of its open sockets.
"""
