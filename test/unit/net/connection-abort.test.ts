// A connection cut short by the relay ends with a reset at the other end, never a FIN (a FIN tells
// an app its stream is complete): an error on one socket other than a reset (ETIMEDOUT: the peer
// vanished), and the idle timeout firing mid-transfer. ProxiedConnection relays between a
// Python client, which tells FIN from error with recv(2) itself, and a Node server.
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ProxiedConnection, type ConnectionSummary, type RelayBudget } from '../../../src/net/connection.js';
import { endedByReset } from '../../../src/net/socket-mark.js';

/** Connects, says hello, reads until FIN or error; prints the outcome and how many bytes came. */
const CLIENT = `
import errno, json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
s.sendall(b"hello")
got = 0
try:
    while True:
        d = s.recv(65536)
        if not d:
            print(json.dumps({"code": "FIN", "received": got}), flush=True)
            break
        got += len(d)
except OSError as e:
    print(json.dumps({"code": errno.errorcode.get(e.errno, "TIMEOUT"), "received": got}), flush=True)
`;

const budget = (): RelayBudget => ({
  held: 0,
  heldPerConnection: 1 << 20,
  heldTotal: 1 << 24,
  headTimeoutMs: 10_000,
  minHeadBytesPerSecond: 0,
  state: 0,
  statePerConnection: 1 << 20,
  stateTotal: 1 << 24,
});

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

function listen(server: Server): Promise<number> {
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

interface Relay {
  conn: ProxiedConnection;
  /** The server's side of the connection, once it has sent its answer. */
  served: Socket;
  client: Promise<{ code: string; received: number }>;
  closed: Promise<ConnectionSummary>;
}

/** A client through a ProxiedConnection to a server that answers `answer` bytes to its hello, then waits. */
async function relay(answer: number, idleMs = 60_000): Promise<Relay> {
  let served!: (s: Socket) => void;
  const servedP = new Promise<Socket>((r) => (served = r));
  const upstreamPort = await listen(
    createServer({ allowHalfOpen: true }, (s) => {
      s.once('data', () => s.write(Buffer.alloc(answer, 0x61), () => served(s)));
      s.on('error', () => undefined);
    }),
  );
  let accepted!: (c: ProxiedConnection) => void;
  const acceptedP = new Promise<ProxiedConnection>((r) => (accepted = r));
  let closed!: (s: ConnectionSummary) => void;
  const closedP = new Promise<ConnectionSummary>((r) => (closed = r));
  const proxyPort = await listen(
    createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
      const conn = new ProxiedConnection('f1', 'egress', socket, { ip: '127.0.0.1', port: socket.remotePort ?? 0 }, { ip: '127.0.0.1', port: upstreamPort }, performance.now(), { connectMs: 5000, idleMs, detectMs: 1000 }, { onClose: (s) => closed(s) }, budget());
      conn.start(null);
      accepted(conn);
    }),
  );
  const child = spawn('/usr/bin/python3', ['-c', CLIENT, String(proxyPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const client = new Promise<{ code: string; received: number }>((resolve) => child.on('close', () => resolve(JSON.parse(out.trim() || '{"code":"none","received":-1}') as { code: string; received: number })));
  const [conn, s] = await Promise.all([acceptedP, servedP]);
  return { conn, served: s, client, closed: closedP };
}

/** Until the relay has written the server's whole answer to the client. */
async function settle(r: Relay, answer: number): Promise<void> {
  while (r.conn.bytesToClient < answer) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('ProxiedConnection: cut short means reset at the other end', () => {
  it('an error on the server socket that is no reset (ETIMEDOUT): the client gets ECONNRESET after the bytes; reason server-reset', async () => {
    const r = await relay(20_000);
    await settle(r, 20_000);
    const upstream = Reflect.get(r.conn, 'upstream') as Socket;
    upstream.destroy(Object.assign(new Error('read ETIMEDOUT'), { code: 'ETIMEDOUT' }));
    expect(await r.client).toEqual({ code: 'ECONNRESET', received: 20_000 });
    const summary = await r.closed;
    expect({ reason: summary.reason, error: summary.error }).toEqual({ reason: 'server-reset', error: 'ETIMEDOUT' });
  });

  it("an error on the client socket that is no reset (EHOSTUNREACH): the server's own socket sees ECONNRESET, not 'end'; reason client-reset", async () => {
    const r = await relay(1000);
    await settle(r, 1000);
    const seen = new Promise<string>((resolve) => {
      // libuv may report an RST as EOF (see end-of-stream.test.ts): SO_ERROR tells.
      r.served.on('end', () => resolve(endedByReset(r.served) ?? 'end'));
      r.served.on('error', (err: NodeJS.ErrnoException) => resolve(String(err.code)));
    });
    const client = Reflect.get(r.conn, 'client') as Socket;
    client.destroy(Object.assign(new Error('read EHOSTUNREACH'), { code: 'EHOSTUNREACH' }));
    expect(await seen).toBe('ECONNRESET');
    const summary = await r.closed;
    expect({ reason: summary.reason, error: summary.error }).toEqual({ reason: 'client-reset', error: 'EHOSTUNREACH' });
  });

  it('the idle timeout mid-answer: the client and the server both get a reset; reason idle-timeout', async () => {
    const r = await relay(20_000, 1000);
    await settle(r, 20_000);
    const seen = new Promise<string>((resolve) => {
      r.served.on('end', () => resolve(endedByReset(r.served) ?? 'end'));
      r.served.on('error', (err: NodeJS.ErrnoException) => resolve(String(err.code)));
    });
    // The idle sweep, 1 s of its time per tick: it fires once nothing moved for a whole tick.
    let now = performance.now();
    const sweep = setInterval(() => r.conn.checkIdle((now += 1000)), 20);
    r.closed.finally(() => clearInterval(sweep)).catch(() => undefined);
    expect(await r.client).toEqual({ code: 'ECONNRESET', received: 20_000 });
    expect(await seen).toBe('ECONNRESET');
    expect((await r.closed).reason).toBe('idle-timeout');
  });
});
