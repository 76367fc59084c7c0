"""The sans-IO protocol core: ZMTP 3.x greeting, framing, commands, metadata,
security mechanisms, the per-connection state machine, and subscription matching.

No I/O and no trio here: a :class:`~zmtp.protocol.connection.Connection` is fed bytes
and returns events, in the style of h11.  The trio socket layer (:mod:`zmtp.sockets`)
and the wire-study tools (:mod:`zmtp.tools`) are built on it.
"""
