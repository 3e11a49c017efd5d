// DLP's hold, end to end: bytes that may be the beginning of a value wait for the sender's next
// bytes (issue 19). A real server writes a response whose card number is cut in two writes, with
// a pause the test controls between them (test/harness/tools/dlp-hold-servers.mjs); a raw TCP
// client in the pod records every byte it receives. The proof is the client's own capture: it
// never gets the card's first digits, and the server's log says it did write both parts.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, TOOLS, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'dr', subnet: 182 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const CARD = '4111 1111 1111 1111';
/** Long enough that a loaded machine never reaches it between the test's steps; the pause test waits it out once. */
const HOLD_MS = 5000;

const CONFIG = `mode: protect
defaultAction: allow
tunnels: off
dlp:
  action: block
  sensors: [pci-pan]
  holdMs: ${HOLD_MS}
`;

/** Lines a child prints, kept, and waited for (whether they came before the wait or after). */
class Lines {
  readonly all: string[] = [];
  private waiters: Array<{ match: (l: string) => boolean; resolve: (l: string) => void }> = [];
  constructor(child: ChildProcess) {
    let rest = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      const parts = (rest + d).split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) {
        this.all.push(line);
        for (const w of this.waiters.splice(0)) (w.match(line) ? () => w.resolve(line) : () => this.waiters.push(w))();
      }
    });
  }
  wait(match: (l: string) => boolean, what: string, timeoutMs = 15_000): Promise<string> {
    const found = this.all.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`never printed ${what}; printed: ${this.all.slice(-6).join(' | ').slice(0, 600)}`)), timeoutMs);
      this.waiters.push({ match, resolve: (l) => { clearTimeout(timer); resolve(l); } });
    });
  }
}

let server: Lines;

/**
 * A raw HTTP/1.1 client in the pod: GET `path`, and print `head` once the response head arrived,
 * `digits` if the first digits of the card ever arrive, `body` once the whole body did (then it
 * closes), `error CODE` on a reset, and `closed <base64 of every byte received>` at the end.
 */
const CLIENT = `const s=require('net').connect(80,process.argv[1]);let got=Buffer.alloc(0),head=false,digits=false,body=false;
s.on('connect',()=>s.write('GET '+process.argv[2]+' HTTP/1.1\\r\\nHost: shop\\r\\n\\r\\n'));
s.on('data',d=>{got=Buffer.concat([got,d]);if(!head&&got.includes('\\r\\n\\r\\n')){head=true;console.log('head')}
if(!digits&&got.includes('4111')){digits=true;console.log('digits')}if(!body&&got.includes('"end":true}')){body=true;console.log('body');s.end()}});
s.on('error',e=>console.log('error '+e.code));s.on('close',()=>{console.log('closed '+got.toString('base64'));process.exit(0)});`;

function client(path: string): Lines {
  return new Lines(topo.start(topo.podNs, NODE, ['-e', CLIENT, peer, path], { uid: APP_UID }));
}

/** Lets the server write the rest of `name`'s response (from the peer's own namespace: not through the sidecar). */
async function resume(name: string): Promise<void> {
  const r = await topo.execAsync(topo.peerNs, 'curl', ['-s', '--max-time', '10', '-X', 'POST', `http://${peer}/resume/${name}`]);
  expect(r.stdout).toBe('resumed\n');
}

const received = (line: string) => Buffer.from(line.slice('closed '.length), 'base64').toString('latin1');
const dlpAlert = (r: FlowRecordLine) => r.type === 'alert' && r.dlp !== undefined;

beforeAll(async () => {
  topo.create();
  const servers = topo.start(topo.peerNs, NODE, [join(TOOLS, 'dlp-hold-servers.mjs'), peer]);
  server = new Lines(servers);
  await waitForLine(servers, (l) => l === 'listening', 15_000, 'dlp hold servers');
  sidecar.init();
  await sidecar.start(CONFIG);
}, 90_000);

afterAll(async () => {
  await sidecar.stop('SIGKILL');
  await topo.destroy();
});

describe('HTTP/1.1 responses: the tail hold', () => {
  it('a card cut across two server writes: the client never receives its first digits, the response is reset', async () => {
    const c = client('/split/card');
    await c.wait((l) => l === 'head', 'the response head');
    await server.wait((l) => l === 'seen sent-first /split/card', 'the first write');
    await resume('card');
    const closed = await c.wait((l) => l.startsWith('closed '), 'the end of the connection');
    await server.wait((l) => l === 'seen sent-rest /split/card', 'the second write');
    const bytes = received(closed);
    expect(bytes).toContain('"card":"'); // everything before the card arrived
    expect(bytes).not.toContain('4111');
    expect(c.all).not.toContain('digits');
    expect(c.all).toContain('error ECONNRESET');
    const alert = await sidecar.waitForRecord((r) => dlpAlert(r) && (r.dlp as { where?: string }).where === 'response-body');
    expect(alert).toMatchObject({ verdict: 'denied', ruleId: 'dlp:pci-pan', dlp: { sensor: 'pci-pan', blocked: true, sample: '4111 **** **** 1111' } });
  });

  it('digits that turn out to be no card reach the client whole once the server writes on', async () => {
    const c = client('/split/clean');
    await c.wait((l) => l === 'head', 'the response head');
    await server.wait((l) => l === 'seen sent-first /split/clean', 'the first write');
    await resume('clean');
    const closed = await c.wait((l) => l.startsWith('closed '), 'the end of the connection');
    expect(c.all).toContain('body');
    expect(received(closed)).toContain('"ref":"4111 1111 1111 2222","end":true}');
  });

  it(`a server that pauses inside the digits does not stall the client: after dlp.holdMs (${HOLD_MS} ms) they go on; the card, completed later, is still cut`, async () => {
    const c = client('/split/pause');
    await c.wait((l) => l === 'head', 'the response head');
    await server.wait((l) => l === 'seen sent-first /split/pause', 'the first write');
    // Only the hold timer can release them: the server writes nothing more until resumed.
    await c.wait((l) => l === 'digits', 'the first digits after the hold timer', HOLD_MS + 20_000);
    await resume('pause');
    const closed = await c.wait((l) => l.startsWith('closed '), 'the end of the connection');
    expect(received(closed)).toContain('"card":"4111 1111 1111');
    expect(received(closed)).not.toContain(CARD);
    expect(c.all).toContain('error ECONNRESET');
  }, HOLD_MS + 40_000);
});

describe('HTTP/2: a card that ends where a DATA frame ends', () => {
  // nghttp sends a file upload in DATA frames of SETTINGS_MAX_FRAME_SIZE (16,384: Node's default),
  // so the card ends exactly at the first frame's end, or one byte before it.
  for (const before of [0, 1]) {
    it(`ending ${before === 0 ? 'at the frame end' : 'one byte before it'}: the server never receives the complete card (its own log), the client gets 403`, async () => {
      const path = `/h2/frame-end-${before}`;
      const head = '{"card":"';
      const body = Buffer.from(`${head}${'x'.repeat(16_384 - head.length - CARD.length - before - 2)}: ${CARD}${'"'.repeat(before)}${'", "tail": "'}${'y'.repeat(5000)}"}`);
      expect(body.indexOf(CARD) + CARD.length + before).toBe(16_384);
      const file = topo.writeFile(`h2-body-${before}`, body.toString('latin1'));
      const n = await topo.execAsync(topo.podNs, 'nghttp', ['-v', '-t', '10', '-d', file, `http://${peer}:8080${path}`], { uid: APP_UID });
      // The first DATA frame nghttp sent was 16,384 bytes: the card ended at (or one byte before) its end.
      expect(n.stdout).toMatch(/send DATA frame <length=16384, flags=0x00, stream_id=\d+>/);
      expect(/:status: (\d+)/.exec(n.stdout)?.[1]).toBe('403');
      await server.wait((l) => l.startsWith(`seen aborted h2 ${path} `) || l.startsWith(`seen complete h2 ${path} `), 'the end of the request at the server');
      expect(server.all.filter((l) => l.startsWith(`seen complete h2 ${path} `))).toEqual([]);
      expect(server.all).not.toContain(`seen card ${path}`);
      const alert = await sidecar.waitForRecord((r) => dlpAlert(r) && (r.l7 as { path?: string }).path === path);
      expect(alert).toMatchObject({ verdict: 'denied', dlp: { sensor: 'pci-pan', where: 'request-body', blocked: true } });
    }, 30_000);
  }
});

describe('gRPC: messages compressed with grpc-encoding gzip', () => {
  /** One gRPC call body: Length-Prefixed-Messages, gzip-compressed (flag 1) unless `plain`. */
  const grpcBody = (texts: string[], plain = false) => Buffer.concat(texts.map((t) => {
    const payload = plain ? Buffer.from(t) : gzipSync(t);
    const head = Buffer.alloc(5);
    head[0] = plain ? 0 : 1;
    head.writeUInt32BE(payload.length, 1);
    return Buffer.concat([head, payload]);
  }));
  const call = (path: string, body: Buffer) => {
    const file = topo.writeFile(`grpc-${path.replaceAll('/', '_')}`, '');
    writeFileSync(file, body); // binary: not through a string
    return topo.execAsync(topo.podNs, 'nghttp', ['-v', '-t', '10', '-H', 'content-type: application/grpc', '-H', 'grpc-encoding: gzip', '-H', 'te: trailers', '-d', file, `http://${peer}:8080${path}`], { uid: APP_UID });
  };

  it('a card inside a compressed message (invisible in the bytes on the wire): the call ends with grpc-status 7, the server never receives the message', async () => {
    const path = '/pay.v1.Payments/Charge';
    const body = grpcBody([JSON.stringify({ note: 'x'.repeat(500) }), JSON.stringify({ card: CARD, note: 'y'.repeat(500) })]);
    expect(body.toString('latin1')).not.toContain('4111');
    const n = await call(path, body);
    expect(n.stdout).toMatch(/grpc-status: 7/);
    await server.wait((l) => l.startsWith(`seen aborted h2 ${path} `) || l.startsWith(`seen complete h2 ${path} `), 'the end of the call at the server');
    expect(server.all.filter((l) => l.startsWith(`seen complete h2 ${path} `))).toEqual([]);
    expect(server.all).not.toContain(`seen card ${path}`);
    const alert = await sidecar.waitForRecord((r) => dlpAlert(r) && (r.l7 as { path?: string }).path === path);
    expect(alert).toMatchObject({ protocol: 'grpc', verdict: 'denied', dlp: { sensor: 'pci-pan', where: 'request-body', blocked: true } });
  }, 30_000);

  it('clean compressed messages reach the server byte for byte', async () => {
    const path = '/orders.v1.Orders/List';
    const body = grpcBody([JSON.stringify({ orderId: 'ORD-2026-000123', ts: '2026-12-03T19:00:00Z' }), JSON.stringify({ phone: '+1 (415) 555-2671' })]);
    const n = await call(path, body);
    expect(n.stdout).toMatch(/:status: 200/);
    const line = await server.wait((l) => l.startsWith(`seen complete h2 ${path} `) || l.startsWith(`seen aborted h2 ${path} `), 'the call at the server');
    expect(line).toBe(`seen complete h2 ${path} ${body.length} ${createHash('sha256').update(body).digest('hex')}`);
  }, 30_000);
});

describe('records', () => {
  it('every record validates against the flow-record schema; every accepted connection has one final record', async () => {
    assertValidFlowRecords(sidecar.records);
    const { accepted, recorded } = await sidecar.stopAndCheckRecords();
    expect(recorded).toBe(accepted);
  });
});
