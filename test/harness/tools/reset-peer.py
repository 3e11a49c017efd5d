#!/usr/bin/env python3
"""Resets, seen reliably: the kernel-relay suite's server and client for reset propagation.

Node's sockets cannot be trusted to tell a reset from a FIN: libuv reports EOF when a socket
hangs up (POLLHUP) after a short read, which is what an RST that follows data looks like. recv(2)
here says ECONNRESET whenever the kernel does.

  reset-peer.py server HOST PORT     per connection, by the header line "~SWK MODE N":
                                     echo 0   echo until FIN or error
                                     reset N  echo until N bytes came, then RST (SO_LINGER 0)
                                     logs {"event":"end"|"error"|"reset","bytes":N,"code":ERR}
  reset-peer.py client HOST PORT N   sends "~SWK reset N" and N bytes (a thread), reads until FIN
                                     or error: {"code":"ECONNRESET"|"FIN"|...,"received":N}
"""
import json
import socket
import struct
import sys
import threading


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def code_of(err):
    import errno
    return errno.errorcode.get(err.errno, str(err.errno)) if err.errno else type(err).__name__


def serve(conn):
    got = 0
    header = b""
    mode, arg = None, 0
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                out({"event": "end", "bytes": got})
                conn.shutdown(socket.SHUT_WR)
                return
            if mode is None:
                header += data
                if b"\n" not in header:
                    continue
                line, data = header.split(b"\n", 1)
                _, mode, n = line.decode().split(" ")
                arg = int(n)
            got += len(data)
            conn.sendall(data)
            if mode == "reset" and got >= arg:
                out({"event": "reset", "bytes": got})
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
    except OSError as err:
        out({"event": "error", "bytes": got, "code": code_of(err)})
    finally:
        conn.close()


def server(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(64)
    out("listening")
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def client(host, port, n):
    s = socket.create_connection((host, port))
    local_port = s.getsockname()[1]

    def send():
        try:
            s.sendall(f"~SWK reset {n}\n".encode())
            chunk = bytes(range(256)) * 256
            left = n
            while left > 0:
                part = chunk[: min(left, len(chunk))]
                s.sendall(part)
                left -= len(part)
        except OSError:
            pass

    threading.Thread(target=send, daemon=True).start()
    received = 0
    try:
        while True:
            data = s.recv(65536)
            if not data:
                out({"code": "FIN", "received": received, "localPort": local_port})
                return
            received += len(data)
    except OSError as err:
        out({"code": code_of(err), "received": received, "localPort": local_port})


if __name__ == "__main__":
    role, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "server":
        server(host, port)
    else:
        client(host, port, int(sys.argv[4]))
