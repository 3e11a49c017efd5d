# An app process trying to ride the DNS proxy's upstream flow: it asks the sidecar for a slow name,
# reads the proxy's upstream source port from /proc/net/udp (sockets of uid 1337 that appear),
# waits for that socket to close, binds the same port and sends its own query to the resolver.
# Prints one JSON line: the proxy ports it saw and, per port, "answered" / "no-answer" / "refused"
# (the send failed) / a bind error.
# Usage: python3 dns-tuple-reuse.py RESOLVER_IP TAG
import json, random, socket, struct, sys, time

resolver, tag = sys.argv[1], sys.argv[2]

def query(name):
    head = struct.pack(">HHHHHH", random.randint(0, 65535), 0x0100, 1, 0, 0, 0)
    return head + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00\x00\x01\x00\x01"

def proxy_ports():
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            for line in open(table).read().splitlines()[1:]:
                cols = line.split()
                if cols[7] == "1337":
                    ports.add(int(cols[1].split(":")[1], 16))
        except FileNotFoundError:
            pass
    return ports

listeners = proxy_ports()
trigger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
trigger.setblocking(False)
trigger.sendto(query("slow-%s.example.test" % tag), (resolver, 53))
seen, deadline = set(), time.time() + 3
while time.time() < deadline:
    seen |= proxy_ports() - listeners
    try:
        trigger.recv(4096)
        break
    except BlockingIOError:
        time.sleep(0.0005)
outcome = {}
for port in sorted(seen):
    for _ in range(2000):
        if port not in proxy_ports():
            break
        time.sleep(0.001)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    try:
        s.bind(("0.0.0.0", port))
    except OSError as e:
        outcome[port] = "bind: %s" % e
        continue
    try:
        s.sendto(query("reuse-%s.example.test" % tag), (resolver, 53))
    except OSError:
        outcome[port] = "refused"  # EPERM: a netfilter DROP in OUTPUT fails the send
        continue
    try:
        s.recvfrom(4096)
        outcome[port] = "answered"
    except socket.timeout:
        outcome[port] = "no-answer"
print(json.dumps({"seen": sorted(seen), "outcome": {str(k): v for k, v in outcome.items()}}), flush=True)
