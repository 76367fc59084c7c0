"""Authentication above the socket layer: CURVE certificates and the ZAP handler (RFC 27).

``zmtp.auth.create_certificates``, ``load_certificate`` and ``load_certificates``
read and write the same files as pyzmq's ``zmq.auth`` (and czmq's ``zcert``).
:class:`Authenticator` answers a Context's ZAP requests with ``zmq.auth``'s policy API
(``allow``, ``deny``, ``configure_plain``, ``configure_curve``, ...), as an ``async
with`` block.
"""

from .authenticator import CURVE_ALLOW_ANY, Authenticator, CredentialsProvider
from .certs import CertificateError, create_certificates, load_certificate, load_certificates

__all__ = [
    "CURVE_ALLOW_ANY",
    "Authenticator",
    "CertificateError",
    "CredentialsProvider",
    "create_certificates",
    "load_certificate",
    "load_certificates",
]
