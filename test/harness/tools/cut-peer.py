#!/usr/bin/env python3
"""Streams cut short by a reset, for the relay-reset suite: each end says, from recv(2) itself,
whether its stream ended with a FIN or an error (Node's sockets may report an RST that follows
data as EOF, which is the defect that suite guards against).

  cut-peer.py server HOST PORT        per connection, by its first line:
      "~SWK answer N"   sends N bytes, then RST (SO_LINGER 0 close): an answer cut short
      "~SWK upload"     reads until FIN or error
      "GET /cut/N ..."  (an HTTP/1.1 request head) a close-delimited 200 response with N body
                        bytes, then RST: no length, so only the FIN would say it is complete
    logs {"event":"reset","sent":N} or {"event":"end"|"error","bytes":N,"code":ERR,"remote":PORT}
  cut-peer.py client HOST PORT answer N   sends "~SWK answer N", reads until FIN or error:
      {"code":"FIN"|"ECONNRESET"|...,"received":N,"localIp":IP,"localPort":PORT}
  cut-peer.py client HOST PORT upload N   sends "~SWK upload" and N bytes, then RST at once:
      {"sent":N,"localIp":IP,"localPort":PORT}
"""
import errno
import json
import socket
import struct
import sys
import threading

LINGER_ZERO = struct.pack("ii", 1, 0)


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def code_of(err):
    return errno.errorcode.get(err.errno, str(err.errno)) if err.errno else type(err).__name__


def reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    conn.close()


def serve(conn, remote):
    head = b""
    got = 0
    try:
        while b"\n" not in head:
            data = conn.recv(65536)
            if not data:
                out({"event": "end", "bytes": 0, "remote": remote})
                return
            head += data
        line, rest = head.split(b"\n", 1)
        words = line.decode("latin-1").split(" ")
        if words[0] == "~SWK" and words[1] == "answer":
            n = int(words[2])
            conn.sendall(b"a" * n)
            out({"event": "reset", "sent": n, "remote": remote})
            reset(conn)
            return
        if words[0] == "GET":
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    break
                head += data
            n = int(words[1].rsplit("/", 1)[1])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + b"h" * n)
            out({"event": "reset", "sent": n, "remote": remote})
            reset(conn)
            return
        got = len(rest)
        while True:
            data = conn.recv(65536)
            if not data:
                out({"event": "end", "bytes": got, "remote": remote})
                return
            got += len(data)
    except OSError as err:
        out({"event": "error", "bytes": got, "code": code_of(err), "remote": remote})
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


def client(host, port, mode, n):
    s = socket.create_connection((host, port))
    local_ip, local_port = s.getsockname()[:2]
    if mode == "upload":
        s.sendall(b"~SWK upload\n" + bytes(range(256)) * (n // 256) + b"u" * (n % 256))
        reset(s)
        out({"sent": n, "localIp": local_ip, "localPort": local_port})
        return
    s.sendall(f"~SWK answer {n}\n".encode())
    received = 0
    try:
        while True:
            data = s.recv(65536)
            if not data:
                out({"code": "FIN", "received": received, "localIp": local_ip, "localPort": local_port})
                return
            received += len(data)
    except OSError as err:
        out({"code": code_of(err), "received": received, "localIp": local_ip, "localPort": local_port})


if __name__ == "__main__":
    role, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "server":
        server(host, port)
    else:
        client(host, port, sys.argv[4], int(sys.argv[5]))
