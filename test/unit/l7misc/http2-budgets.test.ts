// HTTP/2 inside the budgets (issue 15): floods of frames that carry no request close the
// connection with GOAWAY(ENHANCE_YOUR_CALM) and reach the server only up to the budget; an
// ordinary client is never closed; header blocks, frames and HPACK tables cannot make the proxy
// allocate or keep more than their caps; held frames and state are reported to the relay, and a
// read buffer is not kept once its frames are routed.
import { describe, expect, it } from 'vitest';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import { FLOOD_BURST, FLOOD_PER_SECOND } from '../../../src/protocols/http2/http2-enforcer.js';
import type { FilterContext, FilterSink, RequestOutcome } from '../../../src/enforcement/types.js';
import { compilePolicy, type CompiledPolicy } from '../../../src/policy/index.js';
import { buildFrame, buildHeadersFrames, FrameFlag, FrameType } from '../../../src/protocols/http2/frames.js';
import { HPACK_MAX_TABLE_SIZE } from '../../../src/protocols/http2/hpack-decoder.js';
import { HTTP2_MAX_BLOCK_FRAMES, Http2Parser } from '../../../src/protocols/http2/http2-parser.js';
import { createParser } from '../../../src/protocols/registry.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const SETTINGS = buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0));
const PING = buildFrame(FrameType.PING, 0, 0, Buffer.alloc(8));
const GET_HTTP = Buffer.from([0x82, 0x86]);
const str = (s: string): Buffer => Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'latin1')]);
/** GET http <path>, :authority x (literal without indexing: the table is untouched). */
const request = (path: string): Buffer => Buffer.concat([GET_HTTP, Buffer.from([0x04]), str(path), Buffer.from([0x01]), str('x')]);

const POLICY = ((): CompiledPolicy => {
  const r = compilePolicy({ clusterRules: [], workloadRules: [{ id: 'ok', action: 'allow', protocol: 'http2', http: { paths: ['/ok/**'] } }], defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
  return r.policy;
})();

class Sink implements FilterSink {
  server: Buffer[] = [];
  client: Buffer[] = [];
  outcomes: RequestOutcome[] = [];
  closed: { how: string; reason: string } | null = null;
  toServer(b: Buffer): void {
    this.server.push(Buffer.from(b));
  }
  toClient(b: Buffer): void {
    this.client.push(Buffer.from(b));
  }
  close(how: 'fin' | 'reset' | 'reset-server', reason: string): void {
    this.closed ??= { how, reason };
  }
  request(o: RequestOutcome): void {
    this.outcomes.push(o);
  }
  alert(): void {}
}

function open(): { f: ConnectionFilter; sink: Sink } {
  const sink = new Sink();
  const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 8080 } };
  const ctx: FilterContext = { facts, policy: () => POLICY, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' };
  const f = new ConnectionFilter(ctx, sink, POLICY.decideConnection(facts));
  f.serverData(SETTINGS);
  f.clientData(Buffer.concat([PREFACE, SETTINGS]));
  return { f, sink };
}

/** Frames of `type` the server received (its own parser over what reached it). */
function serverSaw(sink: Sink, type: number): number {
  const r = createParser('http2').feed('client', Buffer.concat(sink.server));
  return r.events.filter((e) => e.type === 'http2.frame' && e.frameType === type && ((type !== FrameType.PING && type !== FrameType.SETTINGS) || (e.flags & FrameFlag.ACK) === 0)).length;
}

/** GOAWAY frames sent to the client, with their error codes. */
function goaways(sink: Sink): number[] {
  const out: number[] = [];
  const all = Buffer.concat(sink.client);
  for (let at = 0; at + 9 <= all.length; ) {
    const len = all.readUIntBE(at, 3);
    if (all[at + 3] === FrameType.GOAWAY) out.push(all.readUInt32BE(at + 9 + 4));
    at += 9 + len;
  }
  return out;
}

describe('HTTP/2 flood budget', () => {
  it('a PING flood is closed with GOAWAY(ENHANCE_YOUR_CALM) once the budget is spent; the server sees at most the budget', () => {
    const { f, sink } = open();
    const burst = Buffer.concat(Array.from({ length: 100 }, () => PING));
    for (let i = 0; i < 30 && sink.closed === null; ++i) f.clientData(burst);
    expect(sink.closed?.how).toBe('reset');
    expect(sink.closed?.reason).toBe('overload:http2-flood:client-ping');
    expect(goaways(sink)).toEqual([0xb]);
    // The burst may refill a little while the test runs (FLOOD_PER_SECOND).
    expect(serverSaw(sink, FrameType.PING)).toBeLessThanOrEqual(FLOOD_BURST + FLOOD_PER_SECOND);
    expect(serverSaw(sink, FrameType.PING)).toBeGreaterThanOrEqual(FLOOD_BURST - 100);
    // Nothing more is routed once closed.
    const before = sink.server.length;
    f.clientData(PING);
    expect(sink.server.length).toBe(before);
  });

  it('denied streams count: a run of denied requests closes the connection within the budget, allowed ones never do', () => {
    const t0 = performance.now(); // before the meter exists: it refills from its creation
    const { f, sink } = open();
    let sent = 0;
    while (sent < 20_000 && sink.closed === null) f.clientData(buildHeadersFrames(1 + 2 * sent++, request('/denied'), { endStream: true }));
    const seconds = (performance.now() - t0) / 1000;
    expect(sink.closed?.reason).toBe('overload:http2-flood:client-denied-streams');
    // The budget and what refilled while the loop ran (a slow machine refills more).
    expect(sent).toBeLessThanOrEqual(FLOOD_BURST + 2 + Math.ceil(seconds * FLOOD_PER_SECOND));
    const ok = open();
    for (let i = 0; i < 3000; ++i) ok.f.clientData(buildHeadersFrames(1 + 2 * i, request(`/ok/${i}`), { endStream: true }));
    expect(ok.sink.closed).toBeNull();
    expect(serverSaw(ok.sink, FrameType.HEADERS)).toBe(3000);
  });

  it("gRPC's BDP pings (a PING after each burst of response DATA, thousands of them) are not a flood", () => {
    const { f, sink } = open();
    f.clientData(buildHeadersFrames(1, request('/ok/download'), { endStream: true }));
    f.serverData(buildHeadersFrames(1, Buffer.from([0x88]), { endStream: false })); // :status 200
    const data = buildFrame(FrameType.DATA, 0, 1, Buffer.alloc(64, 0x61));
    for (let i = 0; i < 3000; ++i) {
      f.serverData(data);
      f.clientData(PING);
    }
    expect(sink.closed).toBeNull();
    expect(serverSaw(sink, FrameType.PING)).toBe(3000);
    // ...but PINGs with nothing in between are counted again.
    for (let i = 0; i < 30 && sink.closed === null; ++i) f.clientData(Buffer.concat(Array.from({ length: 100 }, () => PING)));
    expect(sink.closed?.reason).toBe('overload:http2-flood:client-ping');
  });

  it('an ordinary client (a PING and a SETTINGS per request, 500 requests) is not closed', () => {
    const { f, sink } = open();
    for (let i = 0; i < 400; ++i) f.clientData(Buffer.concat([PING, buildHeadersFrames(1 + 2 * i, request(`/ok/${i}`), { endStream: true })]));
    expect(sink.closed).toBeNull();
    expect(serverSaw(sink, FrameType.PING)).toBe(400);
  });
});

describe('HTTP/2 state and allocation caps', () => {
  it('a header block frame claiming more than the block cap is refused at its frame header (no 16 MiB gather)', () => {
    const p = new Http2Parser();
    // Both sides allow the largest frames.
    const big = Buffer.alloc(6);
    big.writeUInt16BE(0x5, 0);
    big.writeUInt32BE(16_777_215, 2);
    p.feed('server', buildFrame(FrameType.SETTINGS, 0, 0, big));
    p.feed('client', Buffer.concat([PREFACE, buildFrame(FrameType.SETTINGS, 0, 0, big)]));
    const header = buildFrame(FrameType.HEADERS, 0, 1, Buffer.alloc(0));
    header.writeUIntBE(16_000_000, 0, 3);
    const r = p.feed('client', header);
    expect(r.error?.code).toBe('ERR_HEAD_TOO_LARGE');
    expect(p.stateBytes).toBeLessThan(64 * 1024);
  });

  it(`a header block spread over more than ${HTTP2_MAX_BLOCK_FRAMES} frames is refused (CONTINUATION flood)`, () => {
    const p = new Http2Parser();
    p.feed('server', SETTINGS);
    p.feed('client', Buffer.concat([PREFACE, SETTINGS, buildFrame(FrameType.HEADERS, 0, 1, GET_HTTP)]));
    const empty = buildFrame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(0));
    const r = p.feed('client', Buffer.concat(Array.from({ length: HTTP2_MAX_BLOCK_FRAMES + 5 }, () => empty)));
    expect(r.error?.code).toBe('ERR_HEAD_TOO_LARGE');
    const ok = new Http2Parser();
    ok.feed('server', SETTINGS);
    ok.feed('client', Buffer.concat([PREFACE, SETTINGS, buildFrame(FrameType.HEADERS, 0, 1, GET_HTTP)]));
    const r2 = ok.feed('client', Buffer.concat([...Array.from({ length: 20 }, () => empty), buildFrame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 1, Buffer.from([0x84, 0x01, 0x01, 0x78]))]));
    expect(r2.error).toBeNull();
  });

  it(`the HPACK table is kept to ${HPACK_MAX_TABLE_SIZE} bytes whatever SETTINGS_HEADER_TABLE_SIZE says; state is reported`, () => {
    const p = new Http2Parser();
    const huge = Buffer.alloc(6);
    huge.writeUInt16BE(0x1, 0);
    huge.writeUInt32BE(1 << 30, 2);
    p.feed('server', buildFrame(FrameType.SETTINGS, 0, 0, huge)); // the server allows the client 1 GiB
    p.feed('client', Buffer.concat([PREFACE, SETTINGS]));
    const before = p.stateBytes;
    // A size update to 1 MiB (RFC 7541 §6.3: 001 prefix, 5-bit integer) is refused...
    const update = Buffer.from([0x3f, 0xe1, 0xff, 0x3f]); // 31 + 1048545 = 1 MiB
    expect(p.feed('client', buildHeadersFrames(1, Buffer.concat([update, GET_HTTP]), { endStream: true })).error?.code).toBe('ERR_COMPRESSION');
    // ...one to 64 KiB is followed, and what it fills counts.
    const q = new Http2Parser();
    q.feed('server', buildFrame(FrameType.SETTINGS, 0, 0, huge));
    q.feed('client', Buffer.concat([PREFACE, SETTINGS]));
    const to64k = Buffer.from([0x3f, 0xe1, 0xff, 0x03]); // 31 + 65505
    const fill = Buffer.concat([to64k, GET_HTTP, ...Array.from({ length: 40 }, (_, i) => Buffer.concat([Buffer.from([0x40]), str(`x-${i}`), Buffer.from([0x7f, 0x82, 0x0c]), Buffer.alloc(1665, 0x61)]))]);
    expect(q.feed('client', buildHeadersFrames(1, fill, { endStream: true })).error).toBeNull();
    expect(q.stateBytes).toBeGreaterThan(before + 60_000);
    expect(q.stateBytes).toBeLessThan(HPACK_MAX_TABLE_SIZE + 8 * 1024);
  });

  it('held header blocks are reported as held; routed frames leave no view of the read buffer', () => {
    const { f } = open();
    const block = buildHeadersFrames(1, request('/ok/a'), { endStream: true });
    f.clientData(block.subarray(0, block.length - 3)); // the block is not whole: held
    f.compact('client');
    expect(f.routedHeldBytes).toBe(block.length - 3);
    expect(f.holdsBytesOf('client')).toBe(false); // copied out: the read buffer may be reused
    f.clientData(block.subarray(block.length - 3));
    expect(f.routedHeldBytes).toBe(0);
    expect(f.holdsBytesOf('client')).toBe(false);
    expect(f.stateBytes).toBeGreaterThan(0);
  });
});
