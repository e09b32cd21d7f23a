"""Client TLS for every output: custom CA, certificate checking, and mutual TLS with a client certificate."""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass
class TlsOptions:
    ca_file: str = ""      # extra CA (PEM) trusted for the destination
    cert_file: str = ""    # client certificate for mutual TLS
    key_file: str = ""
    check_cert: bool = True

    @property
    def mutual(self) -> bool:
        return bool(self.cert_file)


def client_context(tls: TlsOptions) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls.ca_file or None)
    if not tls.check_cert:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file or None)
    return ctx
