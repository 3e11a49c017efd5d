# A DNS "resolver" for tests: logs every query it receives ("query from IP:PORT NAME") — the proof of
# what reached it — and answers NXDOMAIN; names starting with "slow-" are answered after 300 ms.
# Usage: python3 dns-logging-resolver.py BIND_IP
import socket, sys, threading

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(4096)
    if len(d) < 12:
        continue
    labels, i = [], 12
    while i < len(d) and d[i] != 0:
        labels.append(d[i + 1:i + 1 + d[i]].decode("latin1", "replace"))
        i += 1 + d[i]
    name = ".".join(labels)
    print("query from %s:%d %s" % (a[0], a[1], name), flush=True)
    r = bytearray(d)
    r[2], r[3] = 0x81, 0x83
    threading.Timer(0.3 if name.startswith("slow-") else 0, s.sendto, (bytes(r), a)).start()
