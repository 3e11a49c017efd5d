// A reset is passed on as a reset by the JS relay, never as a FIN. libuv reports bytes followed by
// an RST that arrive in the same wakeup as bytes + EOF; passed on as a FIN, a server's reset would
// reach the client as a complete answer, and a client's aborted upload would reach the server as
// a complete one. Each end here is tools/cut-peer.py, which tells FIN from error with recv(2)
// itself: the server's own log proves what the server saw. The kernel relay is off
// (SIDEWALL_SPLICE=0), so every byte goes through src/net/connection.ts; kernel-relay.test.ts
// covers the splice path. Records: reason `reset`, and the client's own address and port.
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, TOOLS, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';

const topo = new Topology({ name: 'cu', subnet: 191 });
const sidecar = new Sidecar(topo);
const PYTHON = '/usr/bin/python3';
const CUT_PEER = join(TOOLS, 'cut-peer.py');
/** Opaque TCP (a rule on L3/L4 facts), and HTTP/1.1 through the L7 filter. */
const TCP_PORT = 9501;
const HTTP_PORT = 80;
/** Connections per case: one RST after data in the same wakeup is what the defect needs, and it is likely, not certain, per connection. */
const ROUNDS = 5;

const CONFIG = `mode: protect
defaultAction: deny
tunnels: off
ports: { "${HTTP_PORT}": http }
rules:
  - { id: cut-tcp, action: allow, direction: egress, ports: [${TCP_PORT}] }
  - { id: cut-http, action: allow, direction: egress, protocol: http, http: { paths: ["/cut/**"] } }
`;

interface ServerEvent {
  event: 'end' | 'error' | 'reset';
  remote: number;
  bytes?: number;
  sent?: number;
  code?: string;
}
const serverEvents: ServerEvent[] = [];

/** The server's line about a connection from the sidecar's dialling port `remote`... or any after `after` when the port is unknown. */
async function serverEvent(after: number, match: (e: ServerEvent) => boolean, what: string): Promise<ServerEvent> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const hit = serverEvents.slice(after).find(match);
    if (hit !== undefined) return hit;
    if (Date.now() > deadline) throw new Error(`the server logged no ${what} (it logged ${JSON.stringify(serverEvents.slice(after))}; sidecar stderr: ${sidecar.stderr.slice(-2000)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface ClientResult {
  code?: string;
  received?: number;
  sent?: number;
  localIp: string;
  localPort: number;
}

async function client(mode: 'answer' | 'upload', n: number): Promise<ClientResult> {
  const r = await topo.execAsync(topo.podNs, PYTHON, [CUT_PEER, 'client', topo.peerIp, String(TCP_PORT), mode, String(n)], { uid: APP_UID });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  expect(last, `client ${mode}: exit ${String(r.status)} ${r.stderr}`).not.toBe('');
  return JSON.parse(last) as ClientResult;
}

const finalRecord = (localPort: number, port: number): Promise<FlowRecordLine> =>
  sidecar.waitForRecord((r) => r.type === 'connection' && r.src.port === localPort && r.dst.port === port && r.reason !== 'open' && r.interim !== true, 15_000);

beforeAll(async () => {
  topo.create();
  const server = topo.start(topo.peerNs, PYTHON, [CUT_PEER, 'server', '0.0.0.0', String(TCP_PORT)]);
  const http = topo.start(topo.peerNs, PYTHON, [CUT_PEER, 'server', '0.0.0.0', String(HTTP_PORT)]);
  for (const proc of [server, http]) {
    proc.stdout?.setEncoding('utf8');
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (line.startsWith('{')) serverEvents.push(JSON.parse(line) as ServerEvent);
    });
  }
  await Promise.all([waitForLine(server, (l) => l === '"listening"', 10_000, 'cut peer'), waitForLine(http, (l) => l === '"listening"', 10_000, 'cut peer (http)')]);
  sidecar.init();
  await sidecar.start(CONFIG, true, { env: { SIDEWALL_SPLICE: '0' } });
}, 90_000);

afterAll(async () => {
  const check = await sidecar.teardown().catch((err: Error) => err);
  await topo.destroy();
  if (check instanceof Error) throw check;
});

describe('JS relay: a reset after data stays a reset', () => {
  it('a server that resets after part of its answer: the client gets ECONNRESET after the bytes, not a FIN; record reason reset', async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const before = serverEvents.length;
      const r = await client('answer', 20_000);
      const atServer = await serverEvent(before, (e) => e.event === 'reset', 'reset of its answer');
      expect(atServer.sent).toBe(20_000);
      // The bytes before the reset, then the reset: what the client would have seen without us.
      expect({ round: i, code: r.code }).toEqual({ round: i, code: 'ECONNRESET' });
      expect(r.received).toBeLessThanOrEqual(20_000);
      const record = await finalRecord(r.localPort, TCP_PORT);
      expect(record.reason).toBe('reset');
      expect(record.src).toMatchObject({ ip: r.localIp, port: r.localPort });
    }
  });

  it("a client that resets after part of its upload: the server's own recv sees ECONNRESET after the bytes, not EOF; record keeps the client's address", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const before = serverEvents.length;
      const r = await client('upload', 30_000);
      const atServer = await serverEvent(before, (e) => e.event === 'end' || e.event === 'error', 'end of the upload');
      expect({ round: i, event: atServer.event, code: atServer.code }).toEqual({ round: i, event: 'error', code: 'ECONNRESET' });
      expect(atServer.bytes).toBeLessThanOrEqual(30_000);
      // The client's socket is gone before the record is written: its address was taken at accept.
      const record = await finalRecord(r.localPort, TCP_PORT);
      expect(record.reason).toBe('reset');
      expect(record.src).toMatchObject({ ip: r.localIp, port: r.localPort });
      expect(record.dst).toEqual({ ip: topo.peerIp, port: TCP_PORT });
    }
  });

  it('an HTTP/1.1 response without a length, cut by a reset: curl fails (56), not a complete 200', async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const before = serverEvents.length;
      const r = await topo.execAsync(topo.podNs, 'curl', ['-s', '-S', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{local_ip} %{local_port}', `http://${topo.peerIp}/cut/20000`], { uid: APP_UID });
      await serverEvent(before, (e) => e.event === 'reset', 'reset of its response');
      const [status, size, localIp, localPort] = r.stdout.trim().split(' ');
      // curl: 56 "Failure when receiving data from the peer" (Connection reset by peer); 0 would be a complete answer.
      expect({ round: i, exit: r.status, status }, r.stderr).toEqual({ round: i, exit: 56, status: '200' });
      expect(Number(size)).toBeLessThanOrEqual(20_000);
      const record = await finalRecord(Number(localPort), HTTP_PORT);
      expect(record.reason).toBe('reset');
      expect(record.src).toMatchObject({ ip: localIp, port: Number(localPort) });
    }
  });
});
