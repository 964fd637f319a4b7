#!/usr/bin/python3
"""A small HTTP(S) server for sealgate's key source tests (HKP, WKD), plus a
forward proxy and a server that never answers. Python stdlib only.

Started and stopped by tests/support/src/keyserver.rs (KeyServer).

Modes:
  serve  --bind IP --port N --root DIR --log FILE [--cert PEM --key PEM]
      Serves files under DIR for any Host. GET /pks/lookup?op=get&search=X
      serves DIR/hkp/<hex of lowercased X>; any other path serves DIR/<path>
      (query ignored). A sidecar file <file>.status holding a number makes
      that the status code, <file>.location a Location header (redirects).
      Missing file: 404. Each request is appended to
      FILE as one line: "GET <target> Host: <host>".
  hang   --bind IP --port N
      Accepts connections and never answers.
  proxy  --bind IP --port N --log FILE [--map HOST=IP ...]
      Forward proxy: CONNECT host:port (tunnel) and absolute-URI requests.
      Logs "CONNECT host:port" / "GET http://..." to FILE. --map resolves a
      name to an address; an unknown name that does not resolve gets 502.

Prints "ready" on stdout once listening ("BINDFAIL ..." if it cannot bind); exits when stdin reaches EOF (the
test process went away).
"""

import argparse
import http.client
import http.server
import os
import select
import socket
import socketserver
import ssl
import sys
import threading
import urllib.parse

LOG_LOCK = threading.Lock()


def log_line(path, line):
    with LOG_LOCK:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()


def watch_stdin():
    """Exit when the parent closes our stdin (or dies)."""
    def run():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except Exception:
            pass
        os._exit(0)
    threading.Thread(target=run, daemon=True).start()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, family):
        self.address_family = family
        super().__init__(addr, handler)


def family_of(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


class ServeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sealgate-testkit-keyserver"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        opts = self.server.opts
        log_line(opts.log, "GET %s Host: %s" % (self.path, self.headers.get("Host", "")))
        parsed = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parsed.path)
        if path == "/pks/lookup":
            q = urllib.parse.parse_qs(parsed.query)
            search = q.get("search", [""])[0].lower()
            if q.get("op", [""])[0] != "get" or not search:
                return self.answer(501, b"only op=get with a search is implemented\n")
            rel = os.path.join("hkp", search.encode("utf-8").hex())
        else:
            parts = [p for p in path.split("/") if p not in ("", ".", "..")]
            rel = os.path.join(*parts) if parts else "index"
        file = os.path.join(opts.root, rel)
        status = 200
        if os.path.isfile(file + ".status"):
            with open(file + ".status", encoding="utf-8") as f:
                status = int(f.read().strip())
        if os.path.isfile(file):
            with open(file, "rb") as f:
                body = f.read()
        elif status == 200:
            return self.answer(404, b"not found\n")
        else:
            body = b"status %d\n" % status
        location = None
        if os.path.isfile(file + ".location"):
            with open(file + ".location", encoding="utf-8") as f:
                location = f.read().strip()
        self.answer(status, body, location)

    def answer(self, status, body, location=None):
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TlsServeHandler(ServeHandler):
    def setup(self):
        self.request.settimeout(30)
        try:
            self.request.do_handshake()
        except Exception:
            pass
        super().setup()


def serve(opts):
    httpd = Server((opts.bind, opts.port), ServeHandler, family_of(opts.bind))
    httpd.opts = opts
    if opts.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts.cert, opts.key)
        # Handshake in the handler thread, not in accept(): a client that
        # never completes it must not block the server.
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                       do_handshake_on_connect=False)
        httpd.RequestHandlerClass = TlsServeHandler
    print("ready", flush=True)
    httpd.serve_forever()


def hang(opts):
    sock = socket.socket(family_of(opts.bind), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((opts.bind, opts.port))
    sock.listen(64)
    print("ready", flush=True)
    held = []
    while True:
        conn, _ = sock.accept()
        held.append(conn)


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def resolve(self, host):
        mapped = self.server.maps.get(host.lower())
        if mapped:
            return mapped
        return socket.getaddrinfo(host, None)[0][4][0]

    def do_CONNECT(self):
        log_line(self.server.opts.log, "CONNECT %s" % self.path)
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((self.resolve(host.strip("[]")), int(port)), timeout=10)
        except Exception as e:
            return self.fail(502, "cannot reach %s: %s" % (self.path, e))
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        conns = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(conns, [], [], 60)
                if not readable:
                    break
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is self.connection else self.connection).sendall(data)
        except Exception:
            pass
        finally:
            upstream.close()

    def do_GET(self):
        log_line(self.server.opts.log, "GET %s" % self.path)
        url = urllib.parse.urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            return self.fail(400, "absolute http URI expected")
        try:
            conn = http.client.HTTPConnection(self.resolve(url.hostname), url.port or 80, timeout=10)
            target = url.path or "/"
            if url.query:
                target += "?" + url.query
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("proxy-connection", "connection", "proxy-authorization")}
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except Exception as e:
            return self.fail(502, "upstream failed: %s" % e)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "content-length", "transfer-encoding", "keep-alive"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def fail(self, status, text):
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


def proxy(opts):
    httpd = Server((opts.bind, opts.port), ProxyHandler, family_of(opts.bind))
    httpd.opts = opts
    httpd.maps = {}
    for m in opts.map or []:
        name, _, ip = m.partition("=")
        httpd.maps[name.lower()] = ip
    print("ready", flush=True)
    httpd.serve_forever()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["serve", "hang", "proxy"])
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--root")
    p.add_argument("--log")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--map", action="append")
    opts = p.parse_args()
    watch_stdin()
    try:
        {"serve": serve, "hang": hang, "proxy": proxy}[opts.mode](opts)
    except OSError as e:
        print("BINDFAIL %s" % e, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
