#!/usr/bin/python3
"""Verifies each DKIM-Signature of a message with dkimpy (Debian's
python3-dkim), independent of sealgate's code, looking the keys up at the
given DNS server (the test's dnsmasq on loopback).

usage: dkim_verify.py HOST:PORT < MESSAGE
Prints one line per signature, "pass" or "fail", then d= s= a= (and why it
failed); exits 0
when there is at least one signature and every one passes, else 1.
"""

import re
import sys

import dkim
import dns.resolver


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name.rstrip("."), "TXT", lifetime=timeout)
        except Exception:
            return None
        for rr in answer:
            return b"".join(rr.strings)
        return None

    message = sys.stdin.buffer.read()
    head = message.split(b"\r\n\r\n", 1)[0]
    count = len(re.findall(rb"(?im)^DKIM-Signature:", head))
    d = dkim.DKIM(message)
    ok = count > 0
    for i in range(count):
        reason = ""
        try:
            passed = d.verify(idx=i, dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            passed, reason = False, str(e)
        tags = {k.decode(): v.decode() for k, v in d.signature_fields.items() if k in (b"d", b"s", b"a")}
        print("pass" if passed else "fail", tags.get("d"), tags.get("s"), tags.get("a"), reason)
        ok = ok and passed
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
