// DLP inside WebSocket messages, end to end: a real client and server (the `ws` package, with
// permessage-deflate and context takeover both ways, test/harness/tools/ws-dlp.mjs) through the
// sidecar. A blocked message is proved from the SERVER's log: it logs every message it received
// whole, and the connection's end; the one with the card never appears there. A response message
// with an SSN is proved from the client's own output. A decompression bomb fails closed.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, TOOLS, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'ws', subnet: 192 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const PORT = 8090;

const CONFIG = `mode: protect
defaultAction: allow
tunnels: block
dlp:
  action: block
  sensors: [pci-pan, us-ssn]
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
  wait(match: (l: string) => boolean, what: string, timeoutMs = 20_000): Promise<string> {
    const found = this.all.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`never printed ${what}; printed: ${this.all.slice(-6).join(' | ').slice(0, 600)}`)), timeoutMs);
      this.waiters.push({ match, resolve: (l) => { clearTimeout(timer); resolve(l); } });
    });
  }
}

let server: Lines;

/** Runs the client scenario against /chat-<name> as the app; returns its output once it ended. */
async function client(name: string, scenario: string): Promise<string[]> {
  const c = new Lines(topo.start(topo.podNs, NODE, [join(TOOLS, 'ws-dlp.mjs'), 'client', `ws://${peer}:${PORT}/chat-${name}`, scenario], { uid: APP_UID }));
  await c.wait((l) => l.startsWith('closed '), `the end of the ${name} connection`);
  return c.all;
}

/** The server's view of the connection to /chat-<name>: its messages (whole) and how it ended (the close line is awaited). */
async function atServer(name: string): Promise<{ extensions: string; messages: string[]; close: string }> {
  const open = await server.wait((l) => l.startsWith('seen open ') && l.split(' ')[3] === `/chat-${name}`, `the ${name} connection`);
  const id = open.split(' ')[2]!;
  const close = await server.wait((l) => l.startsWith(`seen close ${id} `), `the end of the ${name} connection`);
  return { extensions: open.split(' ').slice(4).join(' '), messages: server.all.filter((l) => l.startsWith(`seen message ${id} `)), close: close.split(' ')[3]! };
}

const dlpAlert = (path: string) => (r: FlowRecordLine) => r.type === 'alert' && r.dlp !== undefined && (r.l7 as { path?: string } | undefined)?.path === path;

beforeAll(async () => {
  topo.create();
  const child = topo.start(topo.peerNs, NODE, [join(TOOLS, 'ws-dlp.mjs'), 'server', peer, String(PORT)]);
  server = new Lines(child);
  await waitForLine(child, (l) => l === 'listening', 15_000, 'ws-dlp server');
  sidecar.init();
  await sidecar.start(CONFIG);
}, 90_000);

afterAll(async () => {
  await sidecar.stop('SIGKILL');
  await topo.destroy();
});

describe('WebSocket messages are scanned (permessage-deflate, context takeover)', () => {
  it('clean messages pass both ways byte for byte (fragments with pings between them, compressed)', async () => {
    const out = await client('clean', 'clean');
    expect(out).toContain('ok 20');
    expect(out).toContain('closed 1000');
    const seen = await atServer('clean');
    expect(seen.extensions).toMatch(/^permessage-deflate/);
    expect(seen.messages.length).toBe(20);
    expect(seen.close).toBe('1000');
    expect(sidecar.records.filter(dlpAlert('/chat-clean'))).toEqual([]);
  }, 40_000);

  it('a card split over three fragments, pings between them: the server never receives that message, the connection is reset', async () => {
    const out = await client('card', 'card');
    expect(out).toContain('echoed 1');
    expect(out).toContain('closed 1006');
    const seen = await atServer('card');
    // The message before it arrived whole; the one with the card never did.
    expect(seen.messages.length).toBe(1);
    expect(seen.messages[0]).toMatch(/ card=0 ssn=0$/);
    expect(seen.close).toBe('1006');
    const alert = await sidecar.waitForRecord(dlpAlert('/chat-card'));
    expect(alert).toMatchObject({ verdict: 'denied', ruleId: 'dlp:pci-pan', l7: { upgrade: 'websocket', status: 101 }, dlp: { sensor: 'pci-pan', where: 'request-body', blocked: true, sample: '4111 **** **** 1111' } });
    expect(sidecar.records.filter((r) => JSON.stringify(r).includes('1111 1111 1111')).length).toBe(0);
  }, 40_000);

  it('a server message with an SSN never reaches the client', async () => {
    const out = await client('ssn', 'ssn');
    await server.wait((l) => /^seen sent-ssn \d+$/.test(l), 'the SSN message');
    expect(out.filter((l) => l.startsWith('message '))).toEqual([]);
    expect(out).toContain('closed 1006');
    const alert = await sidecar.waitForRecord(dlpAlert('/chat-ssn'));
    expect(alert).toMatchObject({ verdict: 'denied', ruleId: 'dlp:us-ssn', dlp: { sensor: 'us-ssn', where: 'response-body', blocked: true, sample: '***-**-1234' } });
  }, 40_000);

  it('a message that inflates past the scan budget (a 4 MiB run of one byte, a few KB compressed) is refused: fail closed', async () => {
    const out = await client('bomb', 'bomb');
    expect(out).toContain('closed 1006');
    const seen = await atServer('bomb');
    expect(seen.messages).toEqual([]);
    const alert = await sidecar.waitForRecord(dlpAlert('/chat-bomb'));
    expect(alert).toMatchObject({ verdict: 'denied', ruleId: 'dlp:undecodable', dlp: { sensor: 'undecodable', where: 'request-body', blocked: true } });
    expect((alert.dlp as { sample: string }).sample).toMatch(/decompression bomb/);
  }, 40_000);

  it('every record validates against the flow-record schema; every accepted connection has one final record', async () => {
    assertValidFlowRecords(sidecar.records);
    const { accepted, recorded } = await sidecar.stopAndCheckRecords();
    expect(recorded).toBe(accepted);
  });
});
