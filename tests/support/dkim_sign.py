#!/usr/bin/python3
"""Signs a message with DKIM (RFC 6376) using dkimpy (Debian's python3-dkim),
independent of sealgate's code: the test mail a partner's outbound MTA would
send.

usage: dkim_sign.py KEY.pem SELECTOR DOMAIN HEADER[,HEADER...] LENGTH < MESSAGE > SIGNED
LENGTH: 1 adds an l= tag (the body length), 0 signs the whole body.
The signed message (DKIM-Signature field first) goes to stdout.
"""

import sys

import dkim


def main():
    key_path, selector, domain, headers, length = sys.argv[1:6]
    with open(key_path, "rb") as f:
        key = f.read()
    message = sys.stdin.buffer.read()
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h.encode() for h in headers.split(",")],
        length=length == "1",
        linesep=b"\r\n",
    )
    sys.stdout.buffer.write(signature + message)


if __name__ == "__main__":
    main()
