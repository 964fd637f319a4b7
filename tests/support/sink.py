#!/usr/bin/python3
"""SMTP sink for sealgate's tests: stores every transaction byte-exact.

Run with Debian's /usr/bin/python3 (it has aiosmtpd). Usage:

    sink.py '<json options>'

Options (JSON object):
    port            TCP port on 127.0.0.1 to listen on (required)
    dir             directory to store messages in (required)
    reject_rcpt     {"address": "550 5.1.1 reply", ...}: RCPT TO replies
                    (address compared case-insensitively)
    temp_fail_data  true: answer "451 4.3.0 ..." after the message data
                    (the message is not stored)
    starttls        {"cert": path, "key": path}: offer STARTTLS
    auth            {"user": u, "password": p}: require AUTH PLAIN/LOGIN
                    (only offered after STARTTLS) with these credentials

Every accepted message N is stored as <dir>/<N>.eml (the data exactly as
received after dot-unstuffing, CRLF line endings untouched) and then
<dir>/<N>.json ({"mail_from", "rcpt_tos", "mail_options", "rcpt_options",
"helo", "tls", "auth_user", "commands"}), each written to a temporary name and renamed, the JSON last:
once N.json exists, N.eml is complete. N counts from 1 (six digits).
"commands" lists the transaction's MAIL and RCPT command lines as received
(without the line ending; bytes that are not UTF-8 as \\xNN), accepted or not.

Prints "READY <port>" once listening, "BINDFAIL <error>" (exit 2) if the port
cannot be bound. Exits when stdin reaches EOF (the test process went away),
on SIGTERM, or SIGINT.
"""

import asyncio
import functools
import json
import logging
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class PermissiveSMTP(SMTP):
    # Store what the client sends instead of judging line lengths (RFC 5321
    # allows 1000): tests check the gateway's output themselves.
    line_length_limit = 1024 * 1024

    # Record the MAIL and RCPT lines as the client wrote them (aiosmtpd hands
    # over the text after the verb), before aiosmtpd parses them.
    def record_command(self, verb, arg):
        text = verb if arg is None else verb + " " + arg
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        if not hasattr(self.envelope, "commands"):
            self.envelope.commands = []
        self.envelope.commands.append(text)

    @functools.wraps(SMTP.smtp_MAIL)
    async def smtp_MAIL(self, arg):
        self.record_command("MAIL", arg)
        await super().smtp_MAIL(arg)

    @functools.wraps(SMTP.smtp_RCPT)
    async def smtp_RCPT(self, arg):
        self.record_command("RCPT", arg)
        await super().smtp_RCPT(arg)


class Handler:
    def __init__(self, directory, reject_rcpt, temp_fail_data):
        self.directory = directory
        self.reject_rcpt = {a.lower(): r for a, r in reject_rcpt.items()}
        self.temp_fail_data = temp_fail_data
        self.seq = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.reject_rcpt.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.temp_fail_data:
            return "451 4.3.0 temporary failure (sink told to fail DATA)"
        self.seq += 1
        base = os.path.join(self.directory, "%06d" % self.seq)
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content
        write_atomic(base + ".eml", raw)
        meta = {
            "mail_from": "" if envelope.mail_from == "<>" else envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "helo": session.host_name,
            "tls": session.ssl is not None,
            "auth_user": auth_user(session),
            "commands": list(getattr(envelope, "commands", [])),
        }
        write_atomic(base + ".json", json.dumps(meta).encode("utf-8"))
        logging.info("stored message %d from %r to %r options %r (%d bytes)",
                     self.seq, envelope.mail_from, envelope.rcpt_tos,
                     envelope.mail_options, len(raw))
        return "250 2.0.0 OK stored as %d" % self.seq


def auth_user(session):
    data = getattr(session, "auth_data", None)
    if getattr(session, "authenticated", False) and isinstance(data, LoginPassword):
        return data.login.decode("utf-8", "replace")
    return None


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode("utf-8")
        self.password = password.encode("utf-8")

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == self.user and auth_data.password == self.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def write_atomic(path, data):
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, ".tmp-" + name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def main():
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    opts = json.loads(sys.argv[1])
    handler = Handler(opts["dir"], opts.get("reject_rcpt") or {},
                      bool(opts.get("temp_fail_data")))
    tls_context = None
    if opts.get("starttls"):
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(opts["starttls"]["cert"], opts["starttls"]["key"])

    authenticator = None
    if opts.get("auth"):
        authenticator = Authenticator(opts["auth"]["user"], opts["auth"]["password"])

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        return PermissiveSMTP(
            handler,
            hostname="sink.localdomain",  # no getfqdn() (slow without DNS)
            decode_data=False,
            enable_SMTPUTF8=True,
            data_size_limit=opts.get("size_limit"),
            tls_context=tls_context,
            require_starttls=False,
            authenticator=authenticator,
            auth_required=authenticator is not None,
            auth_require_tls=True,
            loop=loop,
        )

    try:
        server = loop.run_until_complete(
            loop.create_server(factory, host="127.0.0.1", port=int(opts["port"])))
    except OSError as e:
        print("BINDFAIL %s" % e, flush=True)
        sys.exit(2)

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=watch_stdin, daemon=True).start()
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
