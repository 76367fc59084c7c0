"""Wire-study tools, on top of the protocol core and the socket layer.

* :mod:`zmtp.tools.trace`: a conversation tracer fed raw bytes in both directions;
* :mod:`zmtp.tools.decode`: offline decoding of recordings and pcap files;
* :mod:`zmtp.tools.tap`: a relaying tap that records live conversations;
* :mod:`zmtp.tools.format`: human and JSON renderings of trace events;
* :mod:`zmtp.tools.pcap`: conversations written as pcap captures;
* :mod:`zmtp.tools.html`: ladder diagrams of conversations as an HTML page;
* :mod:`zmtp.tools.grammar`: the declarative (construct) grammar of the wire, the oracle
  the tests check the hand-written codecs against;
* :mod:`zmtp.tools.cli`: ``python -m zmtp``.

Nothing in the library proper imports this package.
"""
