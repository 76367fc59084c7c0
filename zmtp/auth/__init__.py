"""Authentication helpers above the protocol core: CURVE certificates (and, later, the
ZAP handler of RFC 27).

``zmtp.auth.create_certificates``, ``load_certificate`` and ``load_certificates``
read and write the same files as pyzmq's ``zmq.auth`` (and czmq's ``zcert``).
"""

from .certs import CertificateError, create_certificates, load_certificate, load_certificates

__all__ = ["CertificateError", "create_certificates", "load_certificate", "load_certificates"]
