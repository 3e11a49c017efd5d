// Load generators and servers of `npm run bench` that Debian has no tool for. Each mode runs as
// its own process inside a namespace, as the uid the bench gives it (`node dist/perf/bench-tools.js
// MODE ...`). Clients print one JSON line (a LoadResult) on stdout; servers print "listening".
//
//   grpc-server HOST PORT                       unary echo service /bench.Bench/Echo (raw bytes)
//   grpc-client HOST:PORT SECONDS CONCURRENCY   unary calls, CONCURRENCY in flight on one channel
//   paced HOST PORT PATH RATE SECONDS CONNS     HTTP/1.1 GETs at a fixed RATE over CONNS keep-alive
//                                               connections; latency from write to last byte
//   hold HOST PORT PATH COUNT                   opens COUNT keep-alive connections, one GET on
//                                               each, prints "ready COUNT" and holds them open
//   relay LISTEN_PORT HOST PORT                 a plain Node TCP relay on LISTEN_PORT (no parsing, no
//                                               records): the floor of any Node data path
//   dns-server HOST PORT                        answers every A query with 10.0.0.1 (RFC 1035)
//   dns-client HOST PORT SECONDS CONCURRENCY    UDP queries, CONCURRENCY outstanding
//   dns-probe HOST PORT                         one query; exit 0 if answered within 1 s
//   udp-echo HOST PORT[,PORT...]                echoes every datagram back to its sender
//   udp-flows HOST PORT SECONDS CONCURRENCY FIRST_SRC_PORT
//                                               a NEW flow per exchange: a fresh socket bound to
//                                               the next source port (20000-64999, from FIRST,
//                                               wrapping), one datagram, the echo awaited (1 s:
//                                               else an error); CONCURRENCY flows in flight
//   udp-probe HOST PORT                         one flow; exit 0 if echoed within 1 s
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Us: number;
  p99Us: number;
  /** Paced mode: sends skipped because every connection was still busy (the target fell behind). */
  skipped?: number;
}

/** Latency samples in microseconds, kept in a growable typed array (no object per sample). */
class LatencySamples {
  private values = new Float64Array(1 << 16);
  count = 0;

  add(us: number): void {
    if (this.count === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.count++] = us;
  }

  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const sorted = this.values.subarray(0, this.count).sort();
    return sorted[Math.min(this.count - 1, Math.floor((p / 100) * this.count))] as number;
  }
}

function nowUs(): number {
  return Number(process.hrtime.bigint()) / 1000;
}

function finish(samples: LatencySamples, errors: number, startedUs: number, extra: Partial<LoadResult> = {}): void {
  const seconds = (nowUs() - startedUs) / 1e6;
  const result: LoadResult = { requests: samples.count, errors, seconds, rps: samples.count / seconds, p50Us: samples.percentile(50), p99Us: samples.percentile(99), ...extra };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// ---- gRPC unary (HTTP/2, application/grpc); payloads are raw bytes, so no protobuf codec cost.
const identity = (b: Buffer): Buffer => b;
const ECHO: grpc.ServiceDefinition = {
  Echo: { path: '/bench.Bench/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

function grpcServer(host: string, port: number): void {
  const server = new grpc.Server();
  server.addService(ECHO, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
  });
  server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    console.log('listening');
  });
}

function grpcClient(target: string, seconds: number, concurrency: number): void {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const payload = Buffer.alloc(100, 0x61);
  const samples = new LatencySamples();
  let errors = 0;
  let measuring = false;
  let stopping = false;
  let inFlight = 0;
  let startedUs = 0;
  const call = (): void => {
    if (stopping) return;
    inFlight++;
    const sent = nowUs();
    client.makeUnaryRequest('/bench.Bench/Echo', identity, identity, payload, (err) => {
      inFlight--;
      if (measuring) {
        if (err) errors++;
        else samples.add(nowUs() - sent);
      }
      if (stopping) {
        if (inFlight === 0) client.close();
        return;
      }
      if (err && !measuring) setTimeout(call, 100); // server not reachable yet: retry slowly
      else call();
    });
  };
  for (let i = 0; i < concurrency; i++) call();
  // A short warm-up: channel connect and JIT are not what is measured.
  setTimeout(() => {
    measuring = true;
    startedUs = nowUs();
    setTimeout(() => {
      measuring = false;
      finish(samples, errors, startedUs);
      stopping = true;
    }, seconds * 1000);
  }, 300);
}

// ---- HTTP/1.1 keep-alive at a fixed rate (added latency below saturation).
const HEADER_END = Buffer.from('\r\n\r\n');

/** One keep-alive connection with at most one request in flight. */
class PacedConnection {
  busy = true; // until connected
  private pending: Buffer | null = null;
  private sentUs = 0;
  readonly socket: Socket;

  constructor(host: string, port: number, private readonly request: Buffer, private readonly done: (latencyUs: number) => void, private readonly failed: () => void) {
    this.socket = connect({ host, port, noDelay: true }, () => (this.busy = false));
    this.onData = this.onData.bind(this);
    this.socket.on('data', this.onData);
    this.socket.on('error', () => this.failed());
  }

  send(): void {
    this.busy = true;
    this.sentUs = nowUs();
    this.socket.write(this.request);
  }

  private onData(chunk: Buffer): void {
    const data = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    const headerEnd = data.indexOf(HEADER_END);
    if (headerEnd < 0) {
      this.pending = data;
      return;
    }
    const match = /\r\ncontent-length:\s*(\d+)/i.exec(data.subarray(0, headerEnd).toString('latin1'));
    const total = headerEnd + 4 + (match ? Number(match[1]) : 0);
    if (data.length < total) {
      this.pending = data;
      return;
    }
    this.pending = null;
    this.busy = false;
    this.done(nowUs() - this.sentUs);
  }
}

function paced(host: string, port: number, path: string, rate: number, seconds: number, conns: number): void {
  const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: sidewall-bench\r\n\r\n`);
  const samples = new LatencySamples();
  let errors = 0;
  let skipped = 0;
  let measuring = false;
  const connections = Array.from({ length: conns }, () => new PacedConnection(host, port, request, (us) => measuring && samples.add(us), () => errors++));
  const intervalUs = 1e6 / rate;
  let next = 0;
  let nextSendUs = 0;
  let startedUs = 0;
  let endUs = Infinity;
  // Timers fire at ~1 ms granularity: each tick sends every request whose slot has passed,
  // round robin over the connections, so the offered rate holds whatever the tick jitter.
  const tick = (): void => {
    const now = nowUs();
    if (now >= endUs) {
      finish(samples, errors, startedUs, { skipped });
      for (const c of connections) c.socket.destroy();
      return;
    }
    while (nextSendUs <= now) {
      nextSendUs += intervalUs;
      let sent = false;
      for (let k = 0; k < conns && !sent; k++) {
        const c = connections[(next + k) % conns] as PacedConnection;
        if (!c.busy) {
          c.send();
          sent = true;
          next = (next + k + 1) % conns;
        }
      }
      if (!sent && measuring) skipped++;
    }
    setTimeout(tick, 1);
  };
  setTimeout(() => {
    nextSendUs = nowUs();
    tick();
    setTimeout(() => {
      measuring = true;
      startedUs = nowUs();
      endUs = startedUs + seconds * 1e6;
    }, 300);
  }, 200);
}

// ---- 1,000 open connections (proxy memory with many connections).
function hold(host: string, port: number, path: string, count: number): void {
  const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  const sockets: Socket[] = [];
  let answered = 0;
  let opened = 0;
  const openOne = (): void => {
    if (opened === count) return;
    opened++;
    const socket = connect({ host, port }, () => socket.write(request));
    sockets.push(socket);
    // Answered once the whole response is in (head + Content-Length): a 1 MiB body counts when
    // it has all arrived, so "ready" means every connection is at rest.
    let head = '';
    let left = -1;
    const onData = (chunk: Buffer): void => {
      if (left < 0) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = /^content-length:\s*(\d+)/im.exec(head.slice(0, end));
        left = (length === null ? 0 : Number(length[1])) - (head.length - end - 4);
      } else left -= chunk.length;
      if (left > 0) return;
      socket.off('data', onData);
      socket.resume(); // nothing more is expected; whatever comes is read and dropped
      if (++answered === count) console.log(`ready ${count}`);
      openOne();
    };
    socket.on('data', onData);
    socket.on('error', (err) => {
      console.error(`hold: ${err.message}`);
      process.exit(1);
    });
  };
  // 50 dials at a time: a burst of 1,000 SYNs would measure the accept queue, not idle memory.
  for (let i = 0; i < 50; i++) openOne();
  process.on('SIGTERM', () => {
    for (const s of sockets) s.destroy();
    process.exit(0);
  });
}

// ---- A minimal Node relay: what Node's socket layer costs with no firewall logic at all.
/** Relays bytes both ways with backpressure; handlers bound once per connection, not per chunk. */
class RelayPair {
  constructor(private readonly a: Socket, private readonly b: Socket) {
    this.onA = this.onA.bind(this);
    this.onB = this.onB.bind(this);
    a.on('data', this.onA);
    b.on('data', this.onB);
    a.on('drain', () => b.resume());
    b.on('drain', () => a.resume());
    a.on('end', () => b.end());
    b.on('end', () => a.end());
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
  }

  private onA(chunk: Buffer): void {
    if (!this.b.write(chunk)) this.a.pause();
  }

  private onB(chunk: Buffer): void {
    if (!this.a.write(chunk)) this.b.pause();
  }
}

function relay(listenPort: number, host: string, port: number): void {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    client.pause();
    const upstream = connect({ host, port, allowHalfOpen: true, noDelay: true }, () => client.resume());
    new RelayPair(client, upstream);
  });
  // Wildcard: an iptables REDIRECT in OUTPUT delivers to the primary address of the interface (127.0.0.1 here).
  server.listen({ host: '0.0.0.0', port: listenPort, backlog: 4096 }, () => console.log('listening'));
}

// ---- DNS over UDP (RFC 1035 §4.1 message format).
/** Offset just past the question's QNAME (labels up to the zero byte). */
function questionEnd(msg: Buffer): number {
  let i = 12;
  while (i < msg.length && msg[i] !== 0) i += (msg[i] as number) + 1;
  return i + 1 + 4; // zero label, QTYPE, QCLASS
}

function dnsServer(host: string, port: number): void {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
  socket.on('message', (query, from) => {
    if (query.length < 17) return;
    const end = questionEnd(query);
    const reply = Buffer.allocUnsafe(end + answer.length);
    query.copy(reply, 0, 0, end);
    reply[2] = 0x80 | ((query[2] as number) & 0x01); // QR, keep RD
    reply[3] = 0x80; // RA, RCODE 0
    reply.writeUInt16BE(1, 6); // ANCOUNT
    reply.writeUInt16BE(0, 8);
    reply.writeUInt16BE(0, 10);
    answer.copy(reply, end);
    socket.send(reply, from.port, from.address);
  });
  socket.bind(port, host, () => console.log('listening'));
}

function dnsQuery(id: number): Buffer {
  const name = Buffer.from('\x05bench\x08sidewall\x04test\x00', 'latin1');
  const q = Buffer.alloc(12 + name.length + 4);
  q.writeUInt16BE(id, 0);
  q[2] = 0x01; // RD
  q.writeUInt16BE(1, 4);
  name.copy(q, 12);
  q.writeUInt16BE(1, 12 + name.length); // A
  q.writeUInt16BE(1, 14 + name.length); // IN
  return q;
}

function dnsClient(host: string, port: number, seconds: number, concurrency: number): void {
  const socket: UdpSocket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const sentAt = new Float64Array(65536);
  const samples = new LatencySamples();
  let errors = 0;
  let measuring = false;
  let stopped = false;
  let nextId = 1;
  let startedUs = 0;
  const send = (): void => {
    const id = nextId;
    nextId = (nextId % 65535) + 1;
    sentAt[id] = nowUs();
    socket.send(dnsQuery(id), port, host);
  };
  socket.on('message', (reply) => {
    if (stopped) return;
    const id = reply.readUInt16BE(0);
    if (measuring) samples.add(nowUs() - (sentAt[id] as number));
    send();
  });
  socket.on('error', () => errors++);
  socket.connect(port, host, () => {
    for (let i = 0; i < concurrency; i++) send();
    setTimeout(() => {
      measuring = true;
      startedUs = nowUs();
      setTimeout(() => {
        stopped = true;
        measuring = false;
        finish(samples, errors, startedUs);
        socket.close();
      }, seconds * 1000);
    }, 300);
  });
}

function dnsProbe(host: string, port: number): void {
  probeOnce(host, port, dnsQuery(4242));
}

/** One datagram; prints 'answered' (exit 0) or why not (exit 1) within 1 s. */
function probeOnce(host: string, port: number, payload: Buffer): void {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const timer = setTimeout(() => {
    console.log('no answer within 1 s');
    process.exit(1);
  }, 1000);
  socket.on('message', () => {
    clearTimeout(timer);
    console.log('answered');
    process.exit(0);
  });
  socket.on('error', (err) => {
    console.log(err.message);
    process.exit(1);
  });
  socket.send(payload, port, host);
}

// ---- New UDP flows (the sidecar's NFQUEUE first-packet path: one verdict per flow).
function udpEcho(host: string, ports: number[]): void {
  let bound = 0;
  for (const port of ports) {
    const socket = createSocket('udp4');
    socket.on('message', (msg, from) => socket.send(msg, from.port, from.address));
    socket.bind(port, host, () => {
      if (++bound === ports.length) console.log('listening');
    });
  }
}

export interface UdpFlowsResult extends LoadResult {
  /** Flows begun (a datagram sent), warm-up included: what the sidecar may have decided. */
  flows: number;
  /** Flows answered, warm-up included: each one must have a record when the sidecar decided it. */
  answered: number;
  /** The source port the next run should start from (no port reused while conntrack may remember it). */
  nextPort: number;
  /** Binds refused (the port was taken): skipped, not flows. */
  bindErrors: number;
}

const UDP_PORT_FIRST = 20000;
const UDP_PORT_END = 65000;

/**
 * Source ports go up one by one rather than the kernel's random pick: with conntrack's memory of
 * finished flows (the bench lowers it to 5 s in the pod), a random port soon lands on a remembered
 * tuple, and that packet is an ESTABLISHED one the sidecar never sees — not a new flow.
 */
function udpFlows(host: string, port: number, seconds: number, concurrency: number, firstPort: number): void {
  const payload = Buffer.alloc(64, 0x75);
  const samples = new LatencySamples();
  let errors = 0;
  let bindErrors = 0;
  let flows = 0;
  let answered = 0;
  let measuring = false;
  let stopping = false;
  let inFlight = 0;
  let startedUs = 0;
  let windowS = NaN;
  let nextPort = firstPort >= UDP_PORT_FIRST && firstPort < UDP_PORT_END ? firstPort : UDP_PORT_FIRST;
  const takePort = (): number => {
    const p = nextPort;
    nextPort = nextPort + 1 >= UDP_PORT_END ? UDP_PORT_FIRST : nextPort + 1;
    return p;
  };
  const report = (): void => {
    const result: UdpFlowsResult = { requests: samples.count, errors, seconds: windowS, rps: samples.count / windowS, p50Us: samples.percentile(50), p99Us: samples.percentile(99), flows, answered, nextPort, bindErrors };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  };
  const flow = (): void => {
    if (stopping) {
      if (inFlight === 0) report();
      return;
    }
    inFlight++;
    const socket = createSocket('udp4');
    let sentUs = 0;
    let timer: NodeJS.Timeout | undefined;
    let over = false;
    const end = (outcome: 'answer' | 'timeout' | 'bind'): void => {
      if (over) return;
      over = true;
      if (timer !== undefined) clearTimeout(timer);
      socket.close();
      inFlight--;
      if (outcome === 'answer') {
        answered++;
        if (measuring) samples.add(nowUs() - sentUs);
      } else if (outcome === 'timeout') {
        if (measuring) errors++;
      } else bindErrors++;
      flow();
    };
    // An error before the send is a refused bind (port taken): that port is skipped.
    socket.on('error', () => end(sentUs === 0 ? 'bind' : 'timeout'));
    socket.on('message', () => end('answer'));
    socket.bind(takePort(), () => {
      sentUs = nowUs();
      flows++;
      socket.send(payload, port, host);
      timer = setTimeout(() => end('timeout'), 1000);
    });
  };
  for (let i = 0; i < concurrency; i++) flow();
  // A short warm-up (JIT, the first flows); then the measured window; flows in flight at its end
  // finish (they count in `answered`, not in the rate) before the result is printed.
  setTimeout(() => {
    measuring = true;
    startedUs = nowUs();
    setTimeout(() => {
      windowS = (nowUs() - startedUs) / 1e6;
      measuring = false;
      stopping = true;
    }, seconds * 1000);
  }, 300);
}

function udpProbe(host: string, port: number): void {
  probeOnce(host, port, Buffer.from('sidewall-bench-probe'));
}

const [mode, ...args] = process.argv.slice(2);
const num = (i: number): number => Number(args[i]);
switch (mode) {
  case 'grpc-server':
    grpcServer(args[0] as string, num(1));
    break;
  case 'grpc-client':
    grpcClient(args[0] as string, num(1), num(2));
    break;
  case 'paced':
    paced(args[0] as string, num(1), args[2] as string, num(3), num(4), num(5));
    break;
  case 'hold':
    hold(args[0] as string, num(1), args[2] as string, num(3));
    break;
  case 'relay':
    relay(num(0), args[1] as string, num(2));
    break;
  case 'dns-server':
    dnsServer(args[0] as string, num(1));
    break;
  case 'dns-client':
    dnsClient(args[0] as string, num(1), num(2), num(3));
    break;
  case 'dns-probe':
    dnsProbe(args[0] as string, num(1));
    break;
  case 'udp-echo':
    udpEcho(args[0] as string, (args[1] as string).split(',').map(Number));
    break;
  case 'udp-flows':
    udpFlows(args[0] as string, num(1), num(2), num(3), num(4));
    break;
  case 'udp-probe':
    udpProbe(args[0] as string, num(1));
    break;
  default:
    console.error(`bench-tools: unknown mode '${mode}'`);
    process.exit(2);
}
