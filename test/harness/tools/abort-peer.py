#!/usr/bin/env python3
"""Streams the sidecar must cut with a reset, for the relay-abort suite: each end says, from
recv(2) itself, whether its stream ended with a FIN or an error. A stream cut short that ends
with a FIN looks complete to the app; it must end with ECONNRESET.

  abort-peer.py server HOST PORT        per connection, by its first line:
      "~SWK hold N"     sends N bytes, then reads until FIN or error (it never answers more)
      "~SWK mark M"     reads M bytes of upload, sends 1000 bytes beginning with the marker
                        SWKDOWNHOLE (a test's iptables rule drops them on their way to the
                        app), then reads until FIN or error
      "~SWK tail B T"   sends B bytes, T more 0.3 s later, then its FIN; reads until FIN or error
      "GET /stall/N"    (an HTTP/1.1 request head) a 200 without a length (close-delimited) and N
                        body bytes, then stalls: reads until FIN or error
    logs {"event":"end"|"error","bytes":READ,"code":ERR,"remote":PORT,"mode":MODE} at the end of
    each connection, and {"event":"sent","sent":N,"remote":PORT} once its answer is out.
  abort-peer.py client HOST PORT hold N [blackhole]   sends "~SWK hold N", reads N bytes; with
      blackhole it then sends 1000 bytes beginning with SWKUPHOLE (dropped on their way to the server); then reads until FIN or error
  abort-peer.py client HOST PORT mark M   sends "~SWK mark M" and M bytes (no FIN), then reads
  abort-peer.py client HOST PORT tail B T WAIT [R]   a slow reader with a small receive buffer:
      reads R bytes (default B) a little at a time, then nothing for WAIT seconds, then reads
      until FIN or error
    each prints {"connected":true,"localIp":IP,"localPort":PORT} once connected, and at the end
    {"code":"FIN"|"ECONNRESET"|"TIMEOUT"|...,"received":N,"localIp":IP,"localPort":PORT}
"""
import errno
import json
import socket
import sys
import threading
import time

# Markers a test's iptables rules drop: on the way to the server, and on the way to the app.
UP_MARK = b"SWKUPHOLE"
DOWN_MARK = b"SWKDOWNHOLE"


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def code_of(err):
    if isinstance(err, socket.timeout):
        return "TIMEOUT"
    return errno.errorcode.get(err.errno, str(err.errno)) if err.errno else type(err).__name__


def read_to_end(conn, got, remote, mode):
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                out({"event": "end", "bytes": got, "remote": remote, "mode": mode})
                return
            got += len(data)
    except OSError as err:
        out({"event": "error", "bytes": got, "code": code_of(err), "remote": remote, "mode": mode})


def serve(conn, remote):
    head = b""
    try:
        while b"\n" not in head:
            data = conn.recv(65536)
            if not data:
                out({"event": "end", "bytes": 0, "remote": remote, "mode": "none"})
                return
            head += data
        line, rest = head.split(b"\n", 1)
        words = line.decode("latin-1").strip().split(" ")
        if words[0] == "GET":
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    break
                head += data
            n = int(words[1].rsplit("/", 1)[1])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + b"h" * n)
            out({"event": "sent", "sent": n, "remote": remote})
            read_to_end(conn, 0, remote, "stall")
            return
        mode = words[1]
        if mode == "hold":
            n = int(words[2])
            conn.sendall(b"a" * n)
            out({"event": "sent", "sent": n, "remote": remote})
            read_to_end(conn, len(rest), remote, mode)
        elif mode == "mark":
            m = int(words[2])
            got = len(rest)
            while got < m:
                data = conn.recv(65536)
                if not data:
                    out({"event": "end", "bytes": got, "remote": remote, "mode": mode})
                    return
                got += len(data)
            conn.sendall(DOWN_MARK + b"b" * (1000 - len(DOWN_MARK)))
            out({"event": "sent", "sent": 1000, "remote": remote})
            read_to_end(conn, got, remote, mode)
        elif mode == "tail":
            b, t = int(words[2]), int(words[3])
            conn.sendall(b"a" * b)
            time.sleep(0.3)
            conn.sendall(b"z" * t)
            conn.shutdown(socket.SHUT_WR)
            out({"event": "sent", "sent": b + t, "remote": remote})
            read_to_end(conn, len(rest), remote, mode)
    except OSError as err:
        out({"event": "error", "bytes": 0, "code": code_of(err), "remote": remote, "mode": "head"})
    finally:
        conn.close()


def server(host, port):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(64)
    out("listening")
    while True:
        conn, addr = s.accept()
        threading.Thread(target=serve, args=(conn, addr[1]), daemon=True).start()


def client(host, port, mode, args):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if mode == "tail":
        # Small, so the sidecar's writes to us back up (a slow reader).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect((host, port))
    local_ip, local_port = s.getsockname()[:2]
    out({"connected": True, "localIp": local_ip, "localPort": local_port})
    received = 0

    def report(code):
        out({"code": code, "received": received, "localIp": local_ip, "localPort": local_port})

    try:
        if mode == "hold":
            n = int(args[0])
            s.sendall(f"~SWK hold {n}\n".encode())
            while received < n:
                data = s.recv(65536)
                if not data:
                    report("FIN")
                    return
                received += len(data)
            if len(args) > 1 and args[1] == "blackhole":
                s.sendall(UP_MARK + b"c" * (1000 - len(UP_MARK)))
        elif mode == "mark":
            m = int(args[0])
            s.sendall(f"~SWK mark {m}\n".encode() + b"u" * m)
        elif mode == "tail":
            b, wait = int(args[0]), float(args[2])
            first = int(args[3]) if len(args) > 3 else b
            s.sendall(f"~SWK tail {b} {args[1]}\n".encode())
            while received < first:
                data = s.recv(min(4096, first - received))
                if not data:
                    report("FIN")
                    return
                received += len(data)
                time.sleep(0.004)
            time.sleep(wait)
        while True:
            data = s.recv(65536)
            if not data:
                report("FIN")
                return
            received += len(data)
    except OSError as err:
        report(code_of(err))


if __name__ == "__main__":
    role, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "server":
        server(host, port)
    else:
        client(host, port, sys.argv[4], sys.argv[5:])
