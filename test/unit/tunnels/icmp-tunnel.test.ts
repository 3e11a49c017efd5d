// The ICMP echo tunnel monitor against real ptunnel-ng 1.42 and iputils ping packets (captured on
// this machine: fixtures/icmp-echo-captures.json, echo data after the 8-byte ICMP header, at most
// the 484 bytes the queue copies), the payloads of the ping implementations pods really run
// (generated as their sources write them), and tunnels without ptunnel's framing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeIpPacket } from '../../../src/protocols/ip/ip-packet.js';
import { echoOf } from '../../../src/sidecar/icmp-echo.js';
import { FLAG_MS, IcmpTunnelMonitor, PATTERNLESS, pingPattern, ptunnelFraming, VOLUME, WINDOW_MS, type EchoMessage } from '../../../src/tunnels/icmp-tunnel.js';

interface Capture { tool: 'ptunnel-ng' | 'iputils-ping'; family: 4 | 6; type: number; id: number; length: number; payload: string }
const captures = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'icmp-echo-captures.json'), 'utf8')) as Capture[];
const COPIED = 484;

const POD = '10.77.186.2';
const PEER = '10.77.186.1';

function echo(payload: Uint8Array, opts: Partial<EchoMessage> = {}): EchoMessage {
  return { requester: POD, responder: PEER, reply: false, identifier: 7, payload: payload.subarray(0, COPIED), length: payload.length, ...opts };
}

function fromCapture(c: Capture): EchoMessage {
  return echo(Buffer.from(c.payload, 'hex'), { reply: c.type === 0 || c.type === 129, identifier: c.id, length: c.length });
}

/** Feeds echo requests (and the kernel's reply, the same payload back) at `everyMs`; returns the findings. */
function run(monitor: IcmpTunnelMonitor, payloads: Iterable<Uint8Array>, everyMs = 1000, start = 0, pair: Partial<EchoMessage> = {}) {
  const findings = [];
  let now = start;
  for (const p of payloads) {
    for (const reply of [false, true]) {
      const v = monitor.onEcho(echo(p, { ...pair, reply }), now);
      if (v.finding !== null || v.flagged) findings.push({ now, ...v });
    }
    now += everyMs;
  }
  return findings;
}

function timeval(ms: number, bytes: 8 | 16): Buffer {
  const b = Buffer.alloc(bytes);
  b.writeUInt32LE(Math.floor(ms / 1000), 0);
  b.writeUInt32LE((ms % 1000) * 1000, bytes / 2);
  return b;
}

/** iputils ping (ping_common.c): a timeval, then bytes counting up from their offset in the ICMP message. */
function* iputils(count: number, size: number, tv: 8 | 16 = 16): Generator<Buffer> {
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(size);
    for (let j = 0; j < size; j++) b[j] = (j + 8) & 0xff;
    timeval(1_764_000_000_000 + i * 1000, tv).copy(b, 0, 0, Math.min(tv, size));
    yield b;
  }
}

function* repeatedPattern(count: number, size: number, pattern: Buffer, head = 16): Generator<Buffer> {
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(size);
    for (let j = head; j < size; j++) b[j] = pattern[(j - head) % pattern.length]!;
    timeval(1_764_000_000_000 + i * 1000, 16).copy(b, 0, 0, Math.min(16, size));
    yield b;
  }
}

/** Windows ping: the letters a..w over and over (`ping -l 32`: "abcdefghijklmnopqrstuvwabcdefghi"). */
const windows = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => 0x61 + (i % 23)));
const WINDOWS = windows(32);

/** Go pro-bing (Telegraf's ping, many exporters): 8-byte time, a 16-byte tracker UUID per Pinger, then 0x01 bytes; a new Pinger per probe. */
function* proBing(count: number, size: number, seed: number): Generator<Buffer> {
  const rnd = fc.sample(fc.uint8Array({ minLength: 16 * count, maxLength: 16 * count }), { seed, numRuns: 1 })[0]!;
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(size, 1);
    timeval(i * 1000, 8).copy(b, 0);
    Buffer.from(rnd.subarray(i * 16, i * 16 + 16)).copy(b, 8);
    yield b;
  }
}

/** icmplib: random letters and digits (random.choices), a new payload per request, 56 bytes. */
function* icmplib(count: number, seed: number): Generator<Buffer> {
  const alphabet = Buffer.from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890');
  const picks = fc.sample(fc.array(fc.nat(alphabet.length - 1), { minLength: 56 * count, maxLength: 56 * count }), { seed, numRuns: 1 })[0]!;
  for (let i = 0; i < count; i++) yield Buffer.from(picks.slice(i * 56, i * 56 + 56).map((k) => alphabet[k]!));
}

function* random(count: number, sizes: (i: number) => number, seed: number): Generator<Buffer> {
  const all = fc.sample(fc.uint8Array({ minLength: 1500, maxLength: 1500 }), { seed, numRuns: count });
  for (let i = 0; i < count; i++) yield Buffer.from(all[i]!.subarray(0, sizes(i)));
}

describe('ICMP echo tunnels', () => {
  it('recognises every ptunnel-ng packet by its framing, with its default magic or another', () => {
    const ptunnel = captures.filter((c) => c.tool === 'ptunnel-ng');
    expect(ptunnel.length).toBeGreaterThan(30);
    for (const c of ptunnel) {
      const e = fromCapture(c);
      expect(ptunnelFraming(e.payload, e.length), c.payload.slice(0, 64)).not.toBeNull();
      // `ptunnel-ng -m 0x5eed1234`: another magic, the same framing.
      const custom = Buffer.from(e.payload);
      custom.writeUInt32BE(0x5eed1234, 0);
      expect(ptunnelFraming(custom, e.length)).not.toBeNull();
    }
    for (const c of captures.filter((x) => x.tool === 'iputils-ping')) expect(ptunnelFraming(fromCapture(c).payload, c.length)).toBeNull();
  });

  it("flags a ptunnel-ng session at its first packet (the one naming the TCP destination), once, and keeps the pair flagged", () => {
    const monitor = new IcmpTunnelMonitor();
    const session = captures.filter((c) => c.tool === 'ptunnel-ng');
    const first = monitor.onEcho(fromCapture(session[0]!), 0);
    expect(first.flagged).toBe(true);
    expect(first.finding).toMatchObject({ kind: 'icmp-tunnel', confidence: 0.95, detected: 'ptunnel' });
    expect(first.finding?.evidence).toContain("ptunnel-ng's default magic 0xdeadc0de");
    expect(first.finding?.evidence).toContain('data_len 0');
    // The rest of the session: flagged, no second alert.
    const rest = session.slice(1).map((c, i) => monitor.onEcho(fromCapture(c), 10 + i));
    expect(rest.every((v) => v.flagged && v.finding === null)).toBe(true);
    // A plain ping between the same hosts stays refused until FLAG_MS after the last finding.
    const ping = [...iputils(1, 56)][0]!;
    expect(monitor.onEcho(echo(ping), 10 + session.length + FLAG_MS - 100).flagged).toBe(true);
    const later = monitor.onEcho(echo(ping), 10 + session.length + FLAG_MS + 1);
    expect(later).toEqual({ finding: null, flagged: false });
    // Another magic: found the same way, at a lower confidence.
    const custom = Buffer.from(session[0]!.payload, 'hex');
    custom.writeUInt32BE(0x5eed1234, 0);
    expect(new IcmpTunnelMonitor().onEcho(echo(custom, { length: session[0]!.length }), 0).finding).toMatchObject({ confidence: 0.9, detected: 'ptunnel' });
  });

  it('finds a tunnel without ptunnel framing by payloads that vary in content and size', () => {
    const monitor = new IcmpTunnelMonitor();
    const found = run(monitor, random(20, (i) => 60 + ((i * 37) % 900), 1), 100);
    expect(found.length).toBeGreaterThan(0);
    // The request that makes PATTERNLESS distinct payloads in 3 sizes.
    expect(found[0]!.now).toBe((PATTERNLESS - 1) * 100);
    expect(found[0]!.finding).toMatchObject({ kind: 'icmp-tunnel', confidence: 0.8, detected: 'icmp-data' });
    expect(found[0]!.finding?.evidence).toMatch(/4 distinct echo payloads between 10\.77\.186\.2 and 10\.77\.186\.1 within 60 s follow no ping pattern past byte 32, in 3\+ sizes/);
    expect(found.filter((f) => f.finding !== null)).toHaveLength(1);
  });

  it('finds a constant-size random stream by its volume, not before', () => {
    const monitor = new IcmpTunnelMonitor();
    const found = run(monitor, random(VOLUME + 5, () => 512, 2), 100);
    expect(found[0]!.now).toBe((VOLUME - 1) * 100);
    expect(found[0]!.finding).toMatchObject({ confidence: 0.7 });
    expect(found[0]!.finding?.evidence).toContain('of one size');
    // Slower than VOLUME per window: nothing.
    expect(run(new IcmpTunnelMonitor(), random(VOLUME * 3, () => 512, 3), WINDOW_MS / (VOLUME - 10))).toEqual([]);
  });

  it('stays silent on the ping payloads pods send (hours of them, every size an MTU sweep tries)', () => {
    const monitor = new IcmpTunnelMonitor();
    const pairs = (n: number) => ({ requester: POD, responder: `10.77.187.${n}` });
    const findings = [
      ...run(monitor, iputils(3600, 56), 1000, 0, pairs(1)),
      ...run(monitor, iputils(3600, 56, 8), 1000, 0, pairs(2)),
      ...run(monitor, (function* () { for (let s = 0; s <= 1472; s++) yield* iputils(1, s); })(), 20, 0, pairs(3)),
      ...run(monitor, iputils(1000, 1400), 200, 0, pairs(4)),
      ...[1, 2, 3, 4, 7, 16].flatMap((n, k) => run(monitor, repeatedPattern(300, 56 + k * 100, Buffer.from('5eedc0ffee00deadbeef0011223344', 'hex').subarray(0, n)), 1000, 0, pairs(10 + k))),
      ...run(monitor, repeatedPattern(600, 32, WINDOWS, 0), 1000, 0, pairs(20)),
      ...run(monitor, (function* () { for (let i = 0; i < 600; i++) yield windows(64 + (i % 3) * 500); })(), 1000, 0, pairs(21)),
      ...run(monitor, repeatedPattern(600, 56, Buffer.from([0])), 500, 0, pairs(22)), // busybox, fping, hping3: zeros
      ...run(monitor, proBing(600, 24, 4), 10_000, 0, pairs(23)),
      ...run(monitor, proBing(600, 56, 5), 1000, 0, pairs(24)),
      ...run(monitor, proBing(600, 1000, 6), 1000, 0, pairs(25)),
      ...run(monitor, icmplib(3600, 7), 1000, 0, pairs(26)),
      ...run(monitor, (function* () { for (let i = 0; i < 600; i++) yield Buffer.from('Prometheus Blackbox Exporter'); })(), 1000, 0, pairs(27)),
    ];
    expect(findings).toEqual([]);
  });

  it('stays silent on every ping pattern: up to 16 bytes after a head of up to 16, up to 32 from byte 0 (fast-check)', () => {
    const shape = fc.oneof(
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 16 }), fc.integer({ min: 0, max: 16 })),
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.constant(0)),
    );
    fc.assert(
      fc.property(shape, fc.integer({ min: 40, max: 1472 }), fc.integer({ min: 1, max: 250 }), ([pattern, head], size, count) => {
        const monitor = new IcmpTunnelMonitor();
        const payloads = [...repeatedPattern(count, size, Buffer.from(pattern), head)].map((b, i) => { b.fill(i & 0xff, 0, head); return b; });
        return run(monitor, payloads, 100).length === 0;
      }),
      { numRuns: 300 },
    );
  });

  it('names the pattern it saw, and none for data', () => {
    expect(pingPattern([...iputils(1, 100)][0]!, 32)).toBe('counting bytes');
    expect(pingPattern(Buffer.alloc(100), 32)).toBe('one byte 0x00 repeated');
    expect(pingPattern(windows(96), 32)).toBe('a 23-byte pattern repeated');
    expect(pingPattern(Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1:8100\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n'), 32)).toBeNull();
  });

  it('never throws on arbitrary echo data, and keeps its state bounded', () => {
    const monitor = new IcmpTunnelMonitor();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(65535), fc.boolean(), fc.nat(1000), (bytes, length, reply, host) => {
        const v = monitor.onEcho(echo(bytes, { length, reply, responder: `10.9.${host >> 8}.${host & 255}` }), 0);
        return typeof v.flagged === 'boolean';
      }),
      { numRuns: 2000 },
    );
  });

  it('reads echo messages out of decoded IPv4 and IPv6 packets, requester and responder the right way round', () => {
    const ptunnel = captures.find((c) => c.tool === 'ptunnel-ng' && c.type === 0 && c.length > 100)!;
    const data = Buffer.from(ptunnel.payload, 'hex');
    const v4 = Buffer.concat([Buffer.from('4500000000004000400100000a4dba010a4dba02', 'hex'), Buffer.from([0, 0, 0, 0, ptunnel.id >> 8, ptunnel.id & 255, 0, 1]), data]);
    v4.writeUInt16BE(20 + 8 + ptunnel.length, 2); // the IP total length: the copy holds at most 484 bytes of data
    const d4 = decodeIpPacket(v4);
    expect(d4.ok).toBe(true);
    if (!d4.ok) return;
    expect(echoOf(d4, v4)).toMatchObject({ requester: '10.77.186.2', responder: '10.77.186.1', reply: true, identifier: ptunnel.id, length: ptunnel.length });
    const ping6 = captures.find((c) => c.family === 6 && c.type === 128)!;
    const v6head = Buffer.alloc(40);
    v6head[0] = 0x60;
    v6head.writeUInt16BE(8 + ping6.length, 4);
    v6head[6] = 58;
    v6head[7] = 64;
    Buffer.from('fd7700ba000000000000000000000002', 'hex').copy(v6head, 8);
    Buffer.from('fd7700ba000000000000000000000001', 'hex').copy(v6head, 24);
    const v6 = Buffer.concat([v6head, Buffer.from([128, 0, 0, 0, 0, 9, 0, 1]), Buffer.from(ping6.payload, 'hex')]);
    const d6 = decodeIpPacket(v6);
    expect(d6.ok).toBe(true);
    if (!d6.ok) return;
    expect(echoOf(d6, v6)).toMatchObject({ requester: 'fd77:ba::2', responder: 'fd77:ba::1', reply: false, identifier: 9, length: ping6.length });
    // Not echo: a destination unreachable.
    const unreachable = Buffer.from(v4);
    unreachable[20] = 3;
    const du = decodeIpPacket(unreachable);
    expect(du.ok && echoOf(du, unreachable)).toBe(null);
  });
});
