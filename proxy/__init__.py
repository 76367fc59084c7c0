"""zmtp proxy: wire two zmtp sockets like ``zmq_proxy_steerable`` (issue: the proxy)."""
