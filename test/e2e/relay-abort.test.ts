// A connection the sidecar cuts short ends with a reset at both ends, never with a FIN: a FIN
// tells an app its stream is complete, so a truncated answer or upload would look whole. The
// cases: a socket error that is no reset (ETIMEDOUT: the other side vanished while we had bytes
// for it), and the idle timeout firing mid-transfer (a server stalled half-way through its
// answer), in the JS relay and in the kernel relay (splice). Each end is tools/abort-peer.py, which
// tells FIN from error with recv(2) itself: the app's and the server's own view. Every accepted
// connection still ends in exactly one final record (checked at each restart of the sidecar).
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, TOOLS, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';

const topo = new Topology({ name: 'ck', subnet: 218 });
const sidecar = new Sidecar(topo);
const PYTHON = '/usr/bin/python3';
const ABORT_PEER = join(TOOLS, 'abort-peer.py');
/** Opaque TCP (a rule on L3/L4 facts), and HTTP/1.1 through the L7 filter. */
const TCP_PORT = 9511;
const HTTP_PORT = 80;

const config = (idleMs: number): string => `mode: protect
defaultAction: deny
tunnels: off
proxy: { idleTimeoutMs: ${idleMs} }
ports: { "${HTTP_PORT}": http }
rules:
  - { id: abort-tcp, action: allow, direction: egress, ports: [${TCP_PORT}] }
  - { id: abort-http, action: allow, direction: egress, protocol: http, http: { paths: ["/stall/**"] } }
`;

interface ServerEvent {
  event: 'end' | 'error' | 'sent';
  remote: number;
  bytes?: number;
  sent?: number;
  code?: string;
  mode?: string;
}
const serverEvents: ServerEvent[] = [];

async function serverEvent(after: number, match: (e: ServerEvent) => boolean, what: string, timeoutMs = 20_000): Promise<ServerEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = serverEvents.slice(after).find(match);
    if (hit !== undefined) return hit;
    if (Date.now() > deadline) throw new Error(`the server logged no ${what} (it logged ${JSON.stringify(serverEvents.slice(after))}; sidecar stderr: ${sidecar.stderr.slice(-2000)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface ClientResult {
  code: string;
  received: number;
  localIp: string;
  localPort: number;
}

async function client(args: string[]): Promise<ClientResult> {
  const r = await topo.execAsync(topo.podNs, PYTHON, [ABORT_PEER, 'client', topo.peerIp, String(TCP_PORT), ...args], { uid: APP_UID });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  expect(last, `client ${args.join(' ')}: exit ${String(r.status)} ${r.stderr}`).not.toBe('');
  return JSON.parse(last) as ClientResult;
}

/** A client left running (its side of the connection is the one that vanishes); killed after its case. */
function backgroundClient(args: string[]): { proc: ChildProcess; lines: string[] } {
  const proc = topo.start(topo.podNs, PYTHON, [ABORT_PEER, 'client', topo.peerIp, String(TCP_PORT), ...args], { uid: APP_UID });
  const lines: string[] = [];
  proc.stdout?.setEncoding('utf8');
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => lines.push(l));
  return { proc, lines };
}

const finalRecord = (match: (r: FlowRecordLine) => boolean): Promise<FlowRecordLine> =>
  sidecar.waitForRecord((r) => r.type === 'connection' && r.reason !== 'open' && r.interim !== true && match(r), 20_000);

/** The kernel relay's count of connections it took (/metrics). */
async function splicedCount(): Promise<number> {
  const r = await topo.execAsync(topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/metrics']);
  const line = r.stdout.split('\n').find((l) => l.startsWith('sidewall_kernel_relay_total{outcome="started"}'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** A new proxy process (the last one's records checked: accepted = recorded). */
async function restart(splice: boolean, idleMs: number): Promise<void> {
  await sidecar.teardown();
  await sidecar.start(config(idleMs), true, { env: { SIDEWALL_SPLICE: splice ? '1' : '0' } });
}

function must(ns: string, cmd: string, args: string[]): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

beforeAll(async () => {
  topo.create();
  // The sidecar's sockets give up on a peer that stopped answering after ~3 s (ETIMEDOUT), not ~15 min.
  must(topo.podNs, 'sysctl', ['-q', '-w', 'net.ipv4.tcp_retries2=3']);
  // Bytes with these markers vanish on their way: toward the server (at the server's own door),
  // and toward the app (on the pod's loopback, where the sidecar writes to it).
  must(topo.peerNs, 'iptables', ['-I', 'INPUT', '-p', 'tcp', '-m', 'string', '--string', 'SWKUPHOLE', '--algo', 'bm', '-j', 'DROP']);
  must(topo.podNs, 'iptables', ['-I', 'OUTPUT', '-o', 'lo', '-p', 'tcp', '-m', 'string', '--string', 'SWKDOWNHOLE', '--algo', 'bm', '-j', 'DROP']);
  for (const port of [TCP_PORT, HTTP_PORT]) {
    const server = topo.start(topo.peerNs, PYTHON, [ABORT_PEER, 'server', '0.0.0.0', String(port)]);
    server.stdout?.setEncoding('utf8');
    createInterface({ input: server.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (line.startsWith('{')) serverEvents.push(JSON.parse(line) as ServerEvent);
    });
    await waitForLine(server, (l) => l === '"listening"', 10_000, 'abort peer');
  }
  sidecar.init();
}, 90_000);

afterAll(async () => {
  const check = await sidecar.teardown().catch((err: Error) => err);
  await topo.destroy();
  if (check instanceof Error) throw check;
});

/** The server vanishes after part of its answer while the app still sends: the sidecar's dial times out. */
async function serverVanishes(round: number): Promise<void> {
  const r = await client(['hold', '20000', 'blackhole']);
  // The bytes before the error, then a reset: not a FIN that would make them a complete answer.
  expect({ round, code: r.code, received: r.received }).toEqual({ round, code: 'ECONNRESET', received: 20_000 });
  const record = await finalRecord((x) => x.src.port === r.localPort && x.dst.port === TCP_PORT);
  expect(record.reason).toBe('reset');
}

/** The app vanishes mid-upload (the sidecar's writes to it time out): the server must not see the upload end cleanly. */
async function appVanishes(round: number): Promise<void> {
  const before = serverEvents.length;
  const { proc, lines } = backgroundClient(['mark', '30000']);
  try {
    const atServer = await serverEvent(before, (e) => (e.event === 'end' || e.event === 'error') && e.mode === 'mark', 'end of the upload');
    expect({ round, event: atServer.event, code: atServer.code, bytes: atServer.bytes }).toEqual({ round, event: 'error', code: 'ECONNRESET', bytes: 30_000 });
    const connected = JSON.parse(lines[0] ?? '{}') as { localPort?: number };
    const record = await finalRecord((x) => x.src.port === connected.localPort && x.dst.port === TCP_PORT);
    expect(record.reason).toBe('reset');
  } finally {
    proc.kill();
  }
}

describe('JS relay: a socket error other than a reset still resets the other side', () => {
  beforeAll(() => restart(false, 60_000), 30_000);

  it('the server times out after part of its answer (ETIMEDOUT): the app gets ECONNRESET after the bytes, not a FIN; record reason reset', async () => {
    await serverVanishes(0);
  }, 30_000);

  it("the app times out mid-upload (ETIMEDOUT): the server's own recv sees ECONNRESET, not EOF; record reason reset", async () => {
    await appVanishes(0);
  }, 30_000);
});

describe('kernel relay: a socket error other than a reset still resets the other side', () => {
  beforeAll(() => restart(true, 60_000), 30_000);

  it('the server times out after part of its answer (ETIMEDOUT): the app gets ECONNRESET, not a FIN', async () => {
    const before = await splicedCount();
    await serverVanishes(0);
    expect(await splicedCount()).toBeGreaterThan(before);
  }, 30_000);

  it("the app times out mid-upload (ETIMEDOUT): the server's own recv sees ECONNRESET, not EOF", async () => {
    const before = await splicedCount();
    await appVanishes(0);
    expect(await splicedCount()).toBeGreaterThan(before);
  }, 30_000);
});

describe('JS relay: the idle timeout mid-transfer resets both sides', () => {
  beforeAll(() => restart(false, 1000), 30_000);

  it('an HTTP/1.1 response without a length, stalled half sent: curl fails (56), not a complete 200; the server sees ECONNRESET; record idle-timeout', async () => {
    const before = serverEvents.length;
    const r = await topo.execAsync(topo.podNs, 'curl', ['-s', '-S', '--max-time', '15', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{local_ip} %{local_port}', `http://${topo.peerIp}/stall/20000`], { uid: APP_UID });
    const [status, size, , localPort] = r.stdout.trim().split(' ');
    // curl: 56 "Recv failure: Connection reset by peer"; 0 would be a complete answer.
    expect({ exit: r.status, status, size }, r.stderr).toEqual({ exit: 56, status: '200', size: '20000' });
    const atServer = await serverEvent(before, (e) => (e.event === 'end' || e.event === 'error') && e.mode === 'stall', 'end of its stalled response');
    expect({ event: atServer.event, code: atServer.code }).toEqual({ event: 'error', code: 'ECONNRESET' });
    const record = await finalRecord((x) => x.src.port === Number(localPort) && x.dst.port === HTTP_PORT);
    expect(record.reason).toBe('idle-timeout');
  }, 30_000);

  it('opaque TCP, an answer stalled half sent: the app gets ECONNRESET after the bytes, the server ECONNRESET; record idle-timeout', async () => {
    await stalledAnswer();
  }, 30_000);

  it('an app that reads nothing while its answer ends (the FIN queued behind bytes it has not taken) when the idle timeout fires: ECONNRESET, never a FIN short of the whole answer', async () => {
    // Answers of about what the kernel's buffers toward the app hold (~70 kB here): the sidecar
    // reads the server's last bytes and FIN while part of them still waits in its write queue, so
    // end() is queued behind them. The abort must then reset: a close let the kernel send a FIN
    // after the part it had (seen here: FIN after 73,848 of 76,000 bytes). Sizes that fit, or
    // that leave the FIN unread, end complete or with a reset either way.
    for (const b of [56_000, 60_000, 64_000, 68_000, 72_000]) {
      const r = await client(['tail', String(b), '12000', '2.5', '0']);
      console.log(`[relay-abort] reader of nothing, ${b + 12_000} bytes: ${r.code} after ${r.received}`);
      if (r.code === 'FIN') expect({ b, received: r.received }).toEqual({ b, received: b + 12_000 });
      else expect({ b, code: r.code }).toEqual({ b, code: 'ECONNRESET' });
      const record = await finalRecord((x) => x.src.port === r.localPort && x.dst.port === TCP_PORT);
      expect(record.reason).toBe('idle-timeout');
    }
  }, 60_000);

});

/** The server stalls after part of its answer; the idle timeout (1 s) ends the connection. */
async function stalledAnswer(): Promise<void> {
  const before = serverEvents.length;
  const r = await client(['hold', '20000']);
  expect({ code: r.code, received: r.received }).toEqual({ code: 'ECONNRESET', received: 20_000 });
  const atServer = await serverEvent(before, (e) => (e.event === 'end' || e.event === 'error') && e.mode === 'hold', 'end of its stalled answer');
  expect({ event: atServer.event, code: atServer.code }).toEqual({ event: 'error', code: 'ECONNRESET' });
  const record = await finalRecord((x) => x.src.port === r.localPort && x.dst.port === TCP_PORT);
  expect(record.reason).toBe('idle-timeout');
}

describe('kernel relay: the idle timeout mid-transfer resets both sides', () => {
  beforeAll(() => restart(true, 1000), 30_000);

  it('opaque TCP, an answer stalled half sent: the app gets ECONNRESET after the bytes, the server ECONNRESET; record idle-timeout', async () => {
    const before = await splicedCount();
    await stalledAnswer();
    expect(await splicedCount()).toBeGreaterThan(before);
  }, 30_000);
});
