// The kernel relay (issue 18, "Bulk"): an allowed opaque TCP stream, once past tunnel detection's
// payload window, is moved between its sockets with splice(2) by the addon instead of through
// JavaScript. What a user would notice must not change: every byte arrives in order both ways
// (the server's own sha256 of what it got), a FIN is passed on per direction (half-close), a
// reset reaches the other side as a reset (the server's own socket error), the flow record has the
// exact byte counts, a capture that joins a spliced connection gets its bytes (the connection goes
// back to the JS relay), and accepted = recorded at the end. /metrics proves the fast path ran.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, asUser, CLI, NODE, PROXY_UID, TOOLS, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';

const topo = new Topology({ name: 'pf', subnet: 174 });
const sidecar = new Sidecar(topo);
const PORT = 9400;
/** reset-peer.py's server: resets told from FINs by recv(2) itself (Node's sockets may report an RST after data as EOF). */
const RESET_PORT = 9401;
const STREAM_PEER = join(TOOLS, 'stream-peer.mjs');
const RESET_PEER = join(TOOLS, 'reset-peer.py');
let captureDir = '';

const CONFIG = () => `mode: protect
defaultAction: deny
tunnels: alert
capture: { dir: ${captureDir}, maxBytes: 64MiB }
rules:
  - { id: opaque-stream, action: allow, direction: egress, peer: { cidr: ["${topo.peerIp}/32"] }, ports: [${PORT}, ${RESET_PORT}] }
`;

/** What the server logged; `remote` is the sidecar's dialling port, so tests take the events after their start. */
interface ServerEvent {
  event: 'end' | 'error' | 'reset';
  remote: number;
  bytes: number;
  sha?: string;
  code?: string;
}
const serverEvents: ServerEvent[] = [];
const resetServerEvents: ServerEvent[] = [];

async function serverEvent(after: number, match: (e: ServerEvent) => boolean, what: string, events = serverEvents): Promise<ServerEvent> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const hit = events.slice(after).find(match);
    if (hit !== undefined) return hit;
    if (Date.now() > deadline) throw new Error(`the server logged no ${what} (it logged ${JSON.stringify(events)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function client(args: string[], port = PORT, tool: [string, string] = [NODE, STREAM_PEER]): Promise<Record<string, unknown>> {
  const r = await topo.execAsync(topo.podNs, tool[0], [tool[1], 'client', topo.peerIp, String(port), ...args], { uid: APP_UID });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  expect(last, r.stderr).not.toBe('');
  return JSON.parse(last) as Record<string, unknown>;
}

const finalRecord = (localPort: unknown, port = PORT): Promise<FlowRecordLine> =>
  sidecar.waitForRecord((r) => r.type === 'connection' && r.src.port === localPort && r.dst.port === port && r.reason !== 'open' && r.interim !== true, 15_000);

/** The kernel relay's counter for one outcome (started, refused, fallback, stopped). */
async function relayCount(outcome: string): Promise<number> {
  const r = await topo.execAsync(topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/metrics']);
  const line = r.stdout.split('\n').find((l) => l.startsWith(`sidewall_kernel_relay_total{outcome="${outcome}"}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

beforeAll(async () => {
  topo.create();
  captureDir = join(topo.dir, 'captures');
  mkdirSync(captureDir);
  chownSync(captureDir, PROXY_UID, PROXY_UID);
  const server = topo.start(topo.peerNs, NODE, [STREAM_PEER, 'server', topo.peerIp, String(PORT)]);
  server.stdout?.setEncoding('utf8');
  createInterface({ input: server.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    if (line.startsWith('{')) serverEvents.push(JSON.parse(line) as ServerEvent);
  });
  await waitForLine(server, (l) => l === '"listening"', 10_000, 'stream peer');
  const resetServer = topo.start(topo.peerNs, '/usr/bin/python3', [RESET_PEER, 'server', topo.peerIp, String(RESET_PORT)]);
  resetServer.stdout?.setEncoding('utf8');
  createInterface({ input: resetServer.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    if (line.startsWith('{')) resetServerEvents.push(JSON.parse(line) as ServerEvent);
  });
  await waitForLine(resetServer, (l) => l === '"listening"', 10_000, 'reset peer');
  sidecar.init();
  await sidecar.start(CONFIG(), true, process.env.PF_SPLICE === undefined ? {} : { env: { SIDEWALL_SPLICE: process.env.PF_SPLICE } });
}, 90_000);

afterAll(async () => {
  const check = await sidecar.teardown().catch((err: Error) => err);
  await topo.destroy();
  if (check instanceof Error) throw check;
});

describe('kernel relay (splice) for allowed opaque streams', () => {
  it('carries 24 MiB up and 32 MiB down unchanged, FIN per direction, with exact counts in the record', async () => {
    const started = await relayCount('started');
    const before = serverEvents.length;
    const up = 24 << 20;
    const down = 32 << 20;
    const r = await client(['sink', String(up), String(down)]);
    // The server's own account: every byte, in order, and it saw the client's FIN (half-close)
    // before it answered; the client got all of the answer and the server's FIN.
    const atServer = await serverEvent(before, (e) => e.event === 'end', 'end of the upload');
    expect({ bytes: atServer.bytes, sha: atServer.sha }).toEqual({ bytes: up, sha: r.sentSha });
    expect(r.received).toBe(down);
    const record = await finalRecord(r.localPort);
    expect(record.verdict).toBe('allowed');
    expect(record.reason).toBe('fin');
    const header = `~SWK sink ${down}\n`.length;
    expect(record.bytes).toEqual({ sent: up + header, received: down });
    expect(await relayCount('started')).toBeGreaterThan(started);
  });

  it('a client reset reaches the server as a reset', async () => {
    const started = await relayCount('started');
    const before = resetServerEvents.length;
    const r = await client(['echo-reset', String(4 << 20)], RESET_PORT);
    expect(r.echoed).toBe(4 << 20);
    const atServer = await serverEvent(before, (e) => e.event !== 'reset', 'end of the connection', resetServerEvents);
    expect(atServer).toMatchObject({ event: 'error', code: 'ECONNRESET' });
    const record = await finalRecord(r.localPort, RESET_PORT);
    expect(record.reason).toBe('reset');
    expect(await relayCount('started')).toBeGreaterThan(started);
  });

  it('a server reset reaches the client as a reset', async () => {
    const started = await relayCount('started');
    const before = resetServerEvents.length;
    const r = await client([String(4 << 20)], RESET_PORT, ['/usr/bin/python3', RESET_PEER]);
    await serverEvent(before, (e) => e.event === 'reset', 'its own reset', resetServerEvents);
    expect(r.code).toBe('ECONNRESET');
    const record = await finalRecord(r.localPort, RESET_PORT);
    expect(record.reason).toBe('reset');
    expect(await relayCount('started')).toBeGreaterThan(started);
  });

  it('a capture joining a spliced connection takes it back and sees the bytes from then on', async () => {
    const stopped = await relayCount('stopped');
    const before = serverEvents.length;
    // Driven line by line on stdin (topo.start gives its children none).
    const [cmd, args] = asUser(APP_UID, NODE, [STREAM_PEER, 'client', topo.peerIp, String(PORT), 'chat']);
    const chat = spawn('ip', ['netns', 'exec', topo.podNs, cmd, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: Array<Record<string, unknown>> = [];
    createInterface({ input: chat.stdout as NodeJS.ReadableStream }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
    const next = async (key: string, value?: unknown): Promise<Record<string, unknown>> => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const hit = lines.find((l) => key in l && (value === undefined || l[key] === value));
        if (hit !== undefined) return hit;
        if (Date.now() > deadline) throw new Error(`chat client: no ${key}; got ${JSON.stringify(lines)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const say = (line: string): void => void (chat.stdin as NodeJS.WritableStream).write(`${line}\n`);
    try {
      say(`send ${2 << 20}`);
      const first = await next('echoed', 2 << 20);
      const pcap = join(captureDir, 'joined.pcapng');
      const cli = topo.execAsync(topo.podNs, NODE, [CLI, 'capture', '--peer', topo.peerIp, '--duration', '3000ms', '-w', pcap], { uid: PROXY_UID });
      // The capture is attached once the relay counts a connection taken back.
      const deadline = Date.now() + 10_000;
      while ((await relayCount('stopped')) === stopped) {
        if (Date.now() > deadline) {
          const r = await cli;
          throw new Error(`no connection was taken back from the kernel relay (capture: ${r.status} ${r.stdout} ${r.stderr}; records so far: ${JSON.stringify(sidecar.records.slice(-3))})`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      say(`send ${1 << 20}`);
      await next('echoed', 3 << 20);
      say('end');
      const done = await next('done');
      expect(done.receivedSha).toBe(done.sentSha);
      const atServer = await serverEvent(before, (e) => e.event === 'end', 'end of the chat');
      expect({ bytes: atServer.bytes, sha: atServer.sha }).toEqual({ bytes: 3 << 20, sha: done.sentSha });
      const record = await finalRecord(first.localPort);
      const header = '~SWK echo 0\n'.length;
      expect(record.bytes).toEqual({ sent: (3 << 20) + header, received: 3 << 20 });
      const result = await cli;
      expect(result.status, result.stderr).toBe(0);
      // The capture has the megabyte sent after it joined, each way (TCP payload from the app's port and to it).
      const fields = spawnSync('tshark', ['-r', pcap, '-T', 'fields', '-e', 'tcp.srcport', '-e', 'tcp.len'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      expect(fields.status, fields.stderr).toBe(0);
      let fromApp = 0;
      let toApp = 0;
      for (const line of fields.stdout.trim().split('\n')) {
        const [src, len] = line.split('\t');
        if (Number(src) === first.localPort) fromApp += Number(len);
        else toApp += Number(len);
      }
      expect(fromApp).toBeGreaterThanOrEqual(1 << 20);
      expect(toApp).toBeGreaterThanOrEqual(1 << 20);
    } finally {
      chat.kill('SIGKILL');
    }
  });
});
