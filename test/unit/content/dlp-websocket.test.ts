// DLP on WebSocket messages (after an accepted HTTP/1 Upgrade), without sockets: the frame parser
// gives the same messages however the stream is cut (masking, fragments, control frames between
// them); a card in a client message — whole, split across frames, with a ping between them,
// compressed with or without context takeover — never reaches the server as a complete message
// and the connection is reset; a server message with an SSN never reaches the client; a
// decompression bomb and bad framing fail closed; monitor records, does not cut.
import { constants, createDeflateRaw, deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DlpEngine, DEFAULT_DLP, type DlpSettings } from '../../../src/content/dlp/index.js';
import { WebSocketScanner } from '../../../src/content/dlp/websocket-scanner.js';
import { BUILTIN_SENSORS } from '../../../src/content/dlp/sensors.js';
import { negotiatedExtensions } from '../../../src/protocols/websocket/extensions.js';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import { filterFor, RecordingSink as Sink, split } from '../enforcement/filter-fixture.js';
import { compilePolicy, type CompiledPolicy } from '../../../src/policy/index.js';
import { clientMessage, frame, FrameLog } from './ws-frames.js';

function policyOf(mode: 'protect' | 'monitor' = 'protect'): CompiledPolicy {
  const r = compilePolicy({ clusterRules: [], workloadRules: [], defaultAction: 'allow', mode });
  if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

function filterWith(sink: Sink, policy: CompiledPolicy, settings: Partial<DlpSettings> = {}): ConnectionFilter {
  const dlp = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan', 'us-ssn'], patterns: [], action: 'block', ...settings });
  return filterFor(sink, policy, 80, dlp);
}

const CARD = '4111 1111 1111 1111';
const UPGRADE = Buffer.from('GET /chat HTTP/1.1\r\nHost: shop\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n');
const switching = (extensions?: string) =>
  Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n${extensions !== undefined ? `Sec-WebSocket-Extensions: ${extensions}\r\n` : ''}\r\n`);
const ping = (data: string) => frame({ opcode: 0x9, payload: data, mask: true });

/** Opens a WebSocket through the filter; returns it with the server's bytes so far (the upgrade request). */
function open(sink: Sink, policy = policyOf(), extensions?: string, settings: Partial<DlpSettings> = {}): ConnectionFilter {
  const filter = filterWith(sink, policy, settings);
  filter.clientData(UPGRADE);
  expect(Buffer.concat(sink.server)).toEqual(UPGRADE);
  filter.serverData(switching(extensions));
  expect(Buffer.concat(sink.client).toString()).toMatch(/^HTTP\/1\.1 101 /);
  return filter;
}

/** What the server read after the upgrade request: completed messages (as sent, compressed or not) and the one left open. */
function atServer(sink: Sink, rsv1 = false): FrameLog {
  const log = new FrameLog(true, rsv1);
  log.feed(Buffer.concat(sink.server).subarray(UPGRADE.length));
  return log;
}

/** A permessage-deflate sender: one raw deflate stream (context takeover) or one per message; the tail 00 00 ff ff removed (RFC 7692 §7.2.1). */
function deflater(takeover: boolean): (msg: string) => Promise<Buffer> {
  const stream = createDeflateRaw();
  const out: Buffer[] = [];
  stream.on('data', (d: Buffer) => out.push(d));
  return async (msg) => {
    if (!takeover) return deflateRawSync(msg, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
    stream.write(msg);
    await new Promise<void>((r) => stream.flush(constants.Z_SYNC_FLUSH, () => r()));
    const all = Buffer.concat(out.splice(0));
    expect(all.subarray(-4)).toEqual(Buffer.from([0, 0, 0xff, 0xff]));
    return all.subarray(0, -4);
  };
}

describe('WebSocket frame parser', () => {
  const frameSpec = fc.record({
    parts: fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 }),
    pings: fc.array(fc.uint8Array({ maxLength: 125 }), { maxLength: 3 }),
    binary: fc.boolean(),
  });

  it('any split of the byte stream gives the same messages and control frames (masked client frames, fragments, pings between them)', () => {
    fc.assert(
      fc.property(fc.array(frameSpec, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 30 }), fc.boolean(), (specs, cuts, masked) => {
        const bytes: Buffer[] = [];
        for (const s of specs) {
          s.parts.forEach((p, i) => {
            bytes.push(frame({ opcode: i === 0 ? (s.binary ? 0x2 : 0x1) : 0x0, payload: Buffer.from(p), fin: i === s.parts.length - 1, ...(masked ? { mask: true as const } : {}) }));
            const pingData = s.pings[i];
            if (i < s.parts.length - 1 && pingData !== undefined) bytes.push(frame({ opcode: 0x9, payload: Buffer.from(pingData), ...(masked ? { mask: true as const } : {}) }));
          });
        }
        const stream = Buffer.concat(bytes);
        const log = new FrameLog(masked);
        for (const piece of split(stream, cuts)) log.feed(piece);
        expect(log.parser.error).toBeNull();
        expect(log.open).toBeNull();
        expect(log.messages).toEqual(specs.map((s) => Buffer.concat(s.parts.map((p) => Buffer.from(p)))));
        expect(log.control.map(([, d]) => d)).toEqual(specs.flatMap((s) => s.parts.slice(0, -1).flatMap((_, i) => (s.pings[i] !== undefined ? [Buffer.from(s.pings[i]!)] : []))));
      }),
      { numRuns: 300 },
    );
  });

  it('unmasks with the frame key at any offset (16- and 64-bit lengths too)', () => {
    for (const len of [0, 1, 125, 126, 65535, 65536, 70_000]) {
      const payload = Buffer.alloc(len, 0x61).fill('4111', len >> 1);
      const log = new FrameLog(true);
      const bytes = frame({ opcode: 0x2, payload, mask: Buffer.from([0xde, 0xad, 0xbe, 0xef]) });
      for (const piece of split(bytes, [3, 7, 11, 200, 65_600])) log.feed(piece);
      expect(log.messages).toEqual([payload]);
    }
  });

  it('refuses what a conforming receiver refuses', () => {
    const cases: Array<[string, Buffer, boolean, boolean]> = [
      ['unmasked client frame', frame({ opcode: 0x1, payload: 'x' }), true, false],
      ['masked server frame', frame({ opcode: 0x1, payload: 'x', mask: true }), false, false],
      ['RSV1 without permessage-deflate', frame({ opcode: 0x1, payload: 'x', rsv1: true, mask: true }), true, false],
      ['RSV1 on a continuation', Buffer.concat([frame({ opcode: 0x1, payload: 'x', fin: false, rsv1: true, mask: true }), frame({ opcode: 0x0, payload: 'y', rsv1: true, mask: true })]), true, true],
      ['reserved opcode', frame({ opcode: 0x3, payload: 'x', mask: true }), true, false],
      ['RSV2', Buffer.from([0xa1, 0x80, 1, 2, 3, 4]), true, false],
      ['fragmented ping', frame({ opcode: 0x9, payload: 'x', fin: false, mask: true }), true, false],
      ['ping of 126 bytes', frame({ opcode: 0x9, payload: 'x'.repeat(126), mask: true }), true, false],
      ['continuation outside a message', frame({ opcode: 0x0, payload: 'x', mask: true }), true, false],
      ['new message inside a message', Buffer.concat([frame({ opcode: 0x1, payload: 'x', fin: false, mask: true }), frame({ opcode: 0x1, payload: 'y', mask: true })]), true, false],
      ['64-bit length with the top bit set', Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]), true, false],
    ];
    for (const [what, bytes, client, rsv1] of cases) {
      const log = new FrameLog(client, rsv1).feed(bytes);
      expect(log.parser.error, what).not.toBeNull();
    }
  });
});

describe('permessage-deflate negotiation (the 101 response)', () => {
  it('reads the parameters, and refuses what the client must fail or we cannot read', () => {
    expect(negotiatedExtensions([])).toEqual({ ok: true, extensions: { client: null, server: null } });
    expect(negotiatedExtensions([['sec-websocket-extensions', 'permessage-deflate; client_no_context_takeover; server_max_window_bits="10"']])).toEqual({
      ok: true,
      extensions: { client: { noContextTakeover: true, maxWindowBits: 15 }, server: { noContextTakeover: false, maxWindowBits: 10 } },
    });
    for (const bad of ['x-webkit-deflate-frame', 'permessage-deflate, permessage-deflate', 'permessage-deflate; server_max_window_bits=16', 'permessage-deflate; client_max_window_bits', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover', 'permessage-deflate; foo']) {
      expect(negotiatedExtensions([['sec-websocket-extensions', bad]]).ok, bad).toBe(false);
    }
  });
});

describe('WebSocket DLP scanner', () => {
  const sensors = [BUILTIN_SENSORS.get('pci-pan')!];

  it('a card split across frames of a compressed message is found, with and without context takeover, any split of the stream', async () => {
    for (const takeover of [true, false]) {
      const compress = deflater(takeover);
      const messages = ['{"hello":"world","pad":"' + 'x'.repeat(500) + '"}', `{"note":"${'y'.repeat(300)}","card":"${CARD}"}`, `{"card again":"${CARD}"}`];
      const frames: Buffer[] = [];
      for (const m of messages) {
        const c = await compress(m);
        const third = Math.max(1, Math.floor(c.length / 3));
        frames.push(clientMessage([c.subarray(0, third), c.subarray(third, 2 * third), c.subarray(2 * third)], { rsv1: true, between: [ping('p1'), ping('p2')] }));
      }
      const stream = Buffer.concat(frames);
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 25 }), (cuts) => {
          const scanner = new WebSocketScanner(sensors, 'request-body', { client: true, deflate: { noContextTakeover: !takeover, maxWindowBits: 15 }, maxBytes: 1 << 20, maxRatio: 100 }, 0);
          const hits: Array<{ sensor: string; offset: number }> = [];
          let at = 0;
          for (const piece of split(stream, cuts)) {
            scanner.push(piece, at, hits as never);
            at += piece.length;
          }
          expect(scanner.refused).toBeNull();
          expect(scanner.messages).toBe(3);
          expect(hits.map((h) => [h.sensor, h.offset])).toEqual([
            ['pci-pan', messages[1]!.indexOf(CARD)],
            ['pci-pan', messages[2]!.indexOf(CARD)],
          ]);
        }),
        { numRuns: 100 },
      );
    }
  });
});

describe('WebSocket DLP through the connection filter', () => {
  it('a card in a client message split across fragments, a ping between them: the server never gets the message whole, the connection is reset (any split of the stream)', () => {
    const card = clientMessage([`{"note":"${'a'.repeat(2000)}","card":"4111 1111`, ' 1111', ` 1111","tail":"${'b'.repeat(2000)}"}`], { between: [ping('hello'), ping('again')] });
    const hello = clientMessage(['{"hi":1}']);
    const stream = Buffer.concat([hello, card, clientMessage(['after'])]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 20 }), (cuts) => {
        const sink = new Sink();
        const filter = open(sink);
        for (const piece of split(stream, cuts)) filter.clientData(piece);
        const server = atServer(sink);
        expect(server.parser.error).toBeNull();
        // The one with the card never completed (the first went through whole, unless it came in the same read: a cut drops the read).
        expect(['', '{"hi":1}']).toContain(server.messages.map((m) => m.toString()).join());
        expect(Buffer.concat(server.open ?? []).toString('latin1')).not.toMatch(/4111 1111 1111 1111/);
        expect(sink.closed).toBe('reset:dlp');
        expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.blocked, a.decision.ruleId, a.l7.upgrade])).toEqual([['pci-pan', 'request-body', true, 'dlp:pci-pan', 'websocket']]);
        expect(JSON.stringify(sink.dlp)).not.toContain('1111 1111 1111');
        expect(filter.decision?.ruleId).toBe('dlp:pci-pan');
      }),
      { numRuns: 200 },
    );
  });

  it('a card that begins at the end of a read is held until the next read decides it', () => {
    const message = clientMessage([`{"card":"${CARD}","x":1}`]);
    const sink = new Sink();
    const filter = open(sink);
    // Unmasked, the card starts 9 bytes into the payload (after a 2-byte head and the 4-byte key).
    const cut = 6 + 9 + 8; // "4111 111" is in, the rest is not
    filter.clientData(message.subarray(0, cut));
    expect(Buffer.concat(sink.server).length - UPGRADE.length).toBeLessThanOrEqual(6 + 9);
    expect(filter.tailHeld).toBe(true);
    filter.clientData(message.subarray(cut));
    expect(sink.closed).toBe('reset:dlp');
    expect(atServer(sink).messages).toEqual([]);
  });

  it('compressed (permessage-deflate, context takeover): a card in the second message is cut, the first is delivered', async () => {
    const compress = deflater(true);
    const first = await compress(`{"card":"none","pad":"${'z'.repeat(400)}"}`);
    const second = await compress(`{"pad":"${'z'.repeat(400)}","card":"${CARD}"}`);
    const sink = new Sink();
    const filter = open(sink, policyOf(), 'permessage-deflate');
    filter.clientData(clientMessage([first], { rsv1: true }));
    filter.clientData(clientMessage([second.subarray(0, 3), second.subarray(3)], { rsv1: true, between: [ping('x')] }));
    const server = atServer(sink, true);
    expect(server.messages).toEqual([first]);
    expect(sink.closed).toBe('reset:dlp');
    expect(sink.dlp.map((a) => a.hit.sensor)).toEqual(['pci-pan']);
  });

  it('a decompression bomb is refused (fail closed): the connection is cut with dlp:undecodable', () => {
    const bomb = deflateRawSync(Buffer.alloc(4 << 20, 0x61), { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
    const sink = new Sink();
    const filter = open(sink, policyOf(), 'permessage-deflate; client_no_context_takeover');
    filter.clientData(clientMessage([bomb], { rsv1: true }));
    expect(sink.closed).toBe('reset:dlp');
    expect(sink.dlp.map((a) => [a.hit.sensor, a.decision.ruleId, a.blocked])).toEqual([['undecodable', 'dlp:undecodable', true]]);
    expect(sink.dlp[0]!.hit.sample).toMatch(/decompression bomb/);
    expect(atServer(sink, true).messages).toEqual([]);
  });

  it('bad framing (an unmasked client frame) fails closed; an extension we cannot read too', () => {
    const sink = new Sink();
    const filter = open(sink);
    filter.clientData(frame({ opcode: 0x1, payload: 'hello' }));
    expect(sink.closed).toBe('reset:dlp');
    expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.sample])).toEqual([['undecodable', 'WebSocket framing: a client frame is not masked']]);
    const sink2 = new Sink();
    const filter2 = filterWith(sink2, policyOf());
    filter2.clientData(UPGRADE);
    filter2.serverData(switching('x-webkit-deflate-frame'));
    expect(sink2.closed).toBe('reset:dlp');
    // The 101 never reached the client.
    expect(sink2.client).toEqual([]);
  });

  it('a server message with an SSN is cut before the client gets it', () => {
    const sink = new Sink();
    const filter = open(sink);
    const before = Buffer.concat(sink.client).length;
    const msg = frame({ opcode: 0x1, payload: `{"user":"ann","pad":"${'p'.repeat(3000)}","ssn":"536-22-1234"}` });
    filter.serverData(msg.subarray(0, 3020));
    filter.serverData(msg.subarray(3020));
    const got = Buffer.concat(sink.client).subarray(before);
    expect(got.toString('latin1')).not.toContain('536-22-1234');
    expect(sink.closed).toBe('reset:dlp');
    expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.blocked])).toEqual([['us-ssn', 'response-body', true]]);
  });

  it('monitor: the hit is recorded (would-deny), nothing is cut or held', () => {
    const sink = new Sink();
    const filter = open(sink, policyOf('monitor'));
    const message = clientMessage([`{"card":"4111 1111`, ` 1111 1111"}`], { between: [ping('x')] });
    filter.clientData(message);
    expect(sink.closed).toBeNull();
    expect(atServer(sink).messages.map(String)).toEqual([`{"card":"${CARD}"}`]);
    expect(sink.dlp.map((a) => [a.hit.sensor, a.decision.verdict, a.blocked])).toEqual([['pci-pan', 'would-deny', false]]);
    expect(filter.decision?.verdict).toBe('would-deny');
  });

  it('a card in a ping between two fragments is cut before the ping reaches the server', () => {
    const sink = new Sink();
    const filter = open(sink);
    filter.clientData(clientMessage(['part one', 'part two'], { between: [ping(`card ${CARD}`)] }));
    expect(sink.closed).toBe('reset:dlp');
    const server = atServer(sink);
    expect(server.control).toEqual([]);
    expect(server.messages).toEqual([]);
    expect(sink.dlp.map((a) => [a.hit.sensor, a.blocked])).toEqual([['pci-pan', true]]);
  });

  it('alert mode records the hit and cuts nothing; a message past maxBytes is scanned up to it (recorded as truncated)', () => {
    const sink = new Sink();
    const filter = open(sink, policyOf(), undefined, { action: 'alert', maxBytes: 4096 });
    filter.clientData(clientMessage([`{"card":"${CARD}"}`]));
    filter.clientData(clientMessage([`${'x'.repeat(5000)} ${CARD}`]));
    filter.clientData(clientMessage([`again ${CARD}`]));
    expect(sink.closed).toBeNull();
    expect(atServer(sink).messages.length).toBe(3);
    expect(sink.dlp.map((a) => [a.hit.sensor, a.decision.verdict, a.blocked])).toEqual([
      ['pci-pan', 'allowed', false],
      ['pci-pan', 'allowed', false],
    ]);
    expect(sink.outcomes[0]!.l7.dlpTruncated).toEqual({ where: 'request-body', scannedBytes: 4096 });
  });

  it('clean traffic passes byte for byte both ways (fragments, pings, compressed)', async () => {
    const compress = deflater(true);
    const sink = new Sink();
    const filter = open(sink, policyOf(), 'permessage-deflate');
    const sent: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const m = JSON.stringify({ i, ts: 1764767655123 + i, phone: `+1 (415) 555-${1000 + i}`, id: `ORD-2026-${String(i).padStart(6, '0')}` });
      const bytes = i % 2 === 0 ? clientMessage([m.slice(0, 10), m.slice(10)], { between: [ping(String(i))] }) : clientMessage([await compress(m)], { rsv1: true });
      sent.push(bytes);
      filter.clientData(bytes);
    }
    const echo = frame({ opcode: 0x1, payload: 'x'.repeat(5000) });
    filter.serverData(echo);
    expect(sink.closed).toBeNull();
    expect(sink.dlp).toEqual([]);
    expect(Buffer.concat(sink.server).subarray(UPGRADE.length)).toEqual(Buffer.concat(sent));
    expect(Buffer.concat(sink.client).subarray(-echo.length)).toEqual(echo);
  });
});
