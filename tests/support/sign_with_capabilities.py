#!/usr/bin/env python3
"""Makes a detached CMS SignedData (DER) over a file, with SMIMECapabilities
chosen by the caller: what a mail client that reads AES-GCM sends, and
what `openssl cms -sign` cannot make (it always writes its own list).

Built from RFC 5652 / RFC 8551 structures with Python's `cryptography` for
the RSA signature, independent of sealgate's code; tests check the result
with `openssl cms -verify`.

usage: sign_with_capabilities.py CERT.pem KEY.pem CONTENT OUT.der OID[,OID...]
"""

import hashlib
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def length(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + length(len(content)) + content


def seq(*items):
    return tlv(0x30, b"".join(items))


def set_of(*items):
    # DER: a SET OF is sorted by encoding.
    return tlv(0x31, b"".join(sorted(items)))


def oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, body)


def integer(n):
    b = n.to_bytes((n.bit_length() + 8) // 8, "big")
    return tlv(0x02, b)


def main():
    cert_path, key_path, content_path, out_path, caps = sys.argv[1:6]
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
    content = open(content_path, "rb").read()
    sha256 = seq(oid("2.16.840.1.101.3.4.2.1"))
    attrs = [
        # contentType: id-data
        seq(oid("1.2.840.113549.1.9.3"), set_of(oid("1.2.840.113549.1.7.1"))),
        # messageDigest
        seq(
            oid("1.2.840.113549.1.9.4"),
            set_of(tlv(0x04, hashlib.sha256(content).digest())),
        ),
        # SMIMECapabilities: SEQUENCE OF SMIMECapability { capabilityID }
        seq(
            oid("1.2.840.113549.1.9.15"),
            set_of(seq(*[seq(oid(c)) for c in caps.split(",") if c])),
        ),
    ]
    attrs_content = b"".join(sorted(attrs))
    # What is signed is the SET OF (tag 31); it travels as [0] IMPLICIT.
    signed_attrs = tlv(0x31, attrs_content)
    signature = key.sign(signed_attrs, padding.PKCS1v15(), hashes.SHA256())
    issuer_and_serial = seq(
        cert.issuer.public_bytes(), integer(cert.serial_number)
    )
    signer_info = seq(
        integer(1),
        issuer_and_serial,
        sha256,
        # [0] IMPLICIT SignedAttributes: the SET's contents under tag A0
        tlv(0xA0, attrs_content),
        seq(oid("1.2.840.113549.1.1.1"), b"\x05\x00"),
        tlv(0x04, signature),
    )
    signed_data = seq(
        integer(1),
        set_of(sha256),
        seq(oid("1.2.840.113549.1.7.1")),
        tlv(0xA0, cert.public_bytes(serialization.Encoding.DER)),
        set_of(signer_info),
    )
    content_info = seq(oid("1.2.840.113549.1.7.2"), tlv(0xA0, signed_data))
    open(out_path, "wb").write(content_info)


if __name__ == "__main__":
    main()
