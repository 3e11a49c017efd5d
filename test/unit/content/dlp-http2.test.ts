// HTTP/2 DLP without sockets: DATA frames of a scanned stream are held until scanned; a card in
// a request body resets the server's stream before END_STREAM and answers the client 403 on that
// stream; the connection's other streams go on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DlpEngine, DEFAULT_DLP } from '../../../src/content/dlp/index.js';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import { RecordingSink as Sink } from '../enforcement/filter-fixture.js';
import { compilePolicy } from '../../../src/policy/index.js';
import { buildDataFrame, buildFrame, buildHeadersFrames, FrameFlag, FrameType } from '../../../src/protocols/http2/frames.js';
import { encodeLiteralHeaderBlock } from '../../../src/protocols/http2/hpack-encoder.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const SETTINGS = buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0));
const post = (id: number, path: string) => buildHeadersFrames(id, encodeLiteralHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', 'shop']]), { endStream: false });

/** Frames (type, stream, END_STREAM) in a byte stream, after an optional preface. */
function frames(bytes: Buffer, skip = 0): string[] {
  const out: string[] = [];
  for (let at = skip; at + 9 <= bytes.length; ) {
    const len = bytes.readUIntBE(at, 3);
    out.push(`${bytes[at + 3]}:${bytes.readUInt32BE(at + 5) & 0x7fffffff}${(bytes[at + 4]! & 1) !== 0 ? ':end' : ''}`);
    at += 9 + len;
  }
  return out;
}

describe('HTTP/2 DLP', () => {
  it('a card in stream 1 body: server stream reset before its end, 403 to the client; stream 3 goes on', () => {
    const policy = compilePolicy({ clusterRules: [], workloadRules: [], defaultAction: 'allow', mode: 'protect' });
    if (!('policy' in policy)) throw new Error('rules');
    const sink = new Sink();
    const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 8080 } };
    const dlp = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan'], patterns: [], action: 'block' });
    const p = policy.policy;
    const filter = new ConnectionFilter({ facts, policy: () => p, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const, dlp }, sink, p.decideConnection(facts));
    filter.serverData(SETTINGS);
    filter.clientData(Buffer.concat([PREFACE, SETTINGS, post(1, '/pay'), post(3, '/clean')]));
    filter.clientData(buildDataFrame(1, Buffer.from(`{"pad":"${'x'.repeat(100)}","card":"4111 11`)));
    filter.clientData(Buffer.concat([buildDataFrame(3, Buffer.from('{"ok":1}'), true), buildDataFrame(1, Buffer.from('11 1111 1111"}'), true)]));
    const toServer = Buffer.concat(sink.server);
    expect(toServer.toString('latin1')).not.toContain('1111 1111"');
    // Server: preface, SETTINGS, HEADERS 1, HEADERS 3, DATA 1 (first part), DATA 3 end, RST_STREAM 1 — never DATA 1 with END_STREAM.
    const serverFrames = frames(toServer, PREFACE.length);
    expect(serverFrames).toContain('3:1');
    expect(serverFrames).toContain('0:3:end');
    expect(serverFrames).not.toContain('0:1:end');
    const toClient = frames(Buffer.concat(sink.client));
    // SETTINGS, the window given back for the dropped DATA, then 403 (HEADERS, DATA END_STREAM) and RST_STREAM NO_ERROR on stream 1.
    expect(toClient).toEqual(['4:0', '8:0', '1:1', '0:1:end', '3:1']);
    expect(sink.dlp.map((a) => [a.hit.sensor, a.blocked, a.decision.ruleId])).toEqual([['pci-pan', true, 'dlp:pci-pan']]);
    expect(sink.outcomes.find((o) => o.l7.path === '/pay')?.l7.status).toBe(403);
  });

  it('gRPC: a card in a message cuts the call with grpc-status 7 naming the sensor, and the server stream is reset', () => {
    const policy = compilePolicy({ clusterRules: [], workloadRules: [], defaultAction: 'allow', mode: 'protect' });
    if (!('policy' in policy)) throw new Error('rules');
    const p = policy.policy;
    const sink = new Sink();
    const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 50051 } };
    const dlp = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan'], patterns: [], action: 'block' });
    const filter = new ConnectionFilter({ facts, policy: () => p, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const, dlp }, sink, p.decideConnection(facts));
    filter.serverData(SETTINGS);
    const call = buildHeadersFrames(1, encodeLiteralHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/pay.v1.Payments/Charge'], [':authority', 'pay'], ['content-type', 'application/grpc'], ['te', 'trailers']]), { endStream: false });
    const proto = Buffer.concat([Buffer.from([0x0a, 19]), Buffer.from('4111 1111 1111 1111')]);
    const message = Buffer.concat([Buffer.from([0, 0, 0, 0, proto.length]), proto]);
    filter.clientData(Buffer.concat([PREFACE, SETTINGS, call, buildDataFrame(1, message, true)]));
    const toServer = Buffer.concat(sink.server);
    expect(toServer.toString('latin1')).not.toContain('4111 1111 1111 1111');
    expect(frames(toServer, PREFACE.length)).toEqual(['4:0', '1:1', '3:1']); // SETTINGS, HEADERS, RST_STREAM
    const toClient = Buffer.concat(sink.client).toString('latin1');
    expect(toClient).toContain('grpc-status');
    expect(sink.dlp[0]).toMatchObject({ protocol: 'grpc', blocked: true, hit: { sensor: 'pci-pan', where: 'request-body' } });
    expect(sink.outcomes.find((o) => o.protocol === 'grpc')?.l7.grpcStatus).toBe(7);
  });
});

describe('HTTP/2 DLP: a value split at a frame boundary', () => {
  const CARD = '4111111111111111';
  function h2filter(sink: Sink) {
    const policy = compilePolicy({ clusterRules: [], workloadRules: [], defaultAction: 'allow', mode: 'protect' });
    if (!('policy' in policy)) throw new Error('rules');
    const p = policy.policy;
    const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 8080 } };
    const dlp = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan', 'us-ssn'], patterns: [], action: 'block' });
    const filter = new ConnectionFilter({ facts, policy: () => p, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const, dlp }, sink, p.decideConnection(facts));
    filter.serverData(SETTINGS);
    return filter;
  }

  it('request body: two DATA frames split at every offset (and each frame in its own read) — hit, 403, the server never gets END_STREAM', () => {
    const body = Buffer.from(`{"note":"${'x'.repeat(40)}","card":"${CARD}","ssn":"x","z":1}`);
    const cardEnd = body.indexOf(CARD) + CARD.length;
    for (let k = 0; k <= body.length; k++) {
      for (const together of [true, false]) {
        const sink = new Sink();
        const filter = h2filter(sink);
        const first = buildDataFrame(1, body.subarray(0, k));
        const second = buildDataFrame(1, body.subarray(k), true);
        if (together) filter.clientData(Buffer.concat([PREFACE, SETTINGS, post(1, '/pay'), first, second]));
        else {
          filter.clientData(Buffer.concat([PREFACE, SETTINGS, post(1, '/pay'), first]));
          filter.clientData(second);
        }
        const at = `split at ${k}${together ? ' (one read)' : ''}`;
        expect(sink.dlp.map((a) => [a.hit.sensor, a.blocked]), at).toEqual([['pci-pan', true]]);
        const toServer = Buffer.concat(sink.server);
        const serverFrames = frames(toServer, PREFACE.length);
        expect(serverFrames, at).not.toContain('0:1:end');
        expect(serverFrames, at).toContain('3:1');
        // Not even when the first frame ends at its last digit or one byte after: that frame waits
        // for the next one, which decides the match.
        expect(toServer.includes(CARD), at).toBe(false);
        if (k === cardEnd || k === cardEnd + 1) expect(toServer.includes(CARD.slice(0, 4)), at).toBe(false);
        // 403 HEADERS, its body, RST_STREAM NO_ERROR (WINDOW_UPDATEs for dropped DATA left out).
        expect(frames(Buffer.concat(sink.client)).filter((f) => !f.startsWith('8:')).slice(-3), at).toEqual(['1:1', '0:1:end', '3:1']);
      }
    }
  });

  it('request body: the value spread over one DATA frame per byte, padded frames among them', () => {
    const body = Buffer.from(`{"card":"${CARD}"}`);
    const parts: Buffer[] = [];
    for (let i = 0; i < body.length; i++) {
      const last = i === body.length - 1;
      if (i % 3 === 0) {
        // PADDED (RFC 9113 §6.1): pad length, the byte, 4 bytes of padding.
        parts.push(buildFrame(FrameType.DATA, FrameFlag.PADDED | (last ? FrameFlag.END_STREAM : 0), 1, Buffer.concat([Buffer.from([4]), body.subarray(i, i + 1), Buffer.alloc(4)])));
      } else parts.push(buildDataFrame(1, body.subarray(i, i + 1), last));
    }
    const sink = new Sink();
    const filter = h2filter(sink);
    filter.clientData(Buffer.concat([PREFACE, SETTINGS, post(1, '/pay')]));
    for (const p of parts) filter.clientData(p);
    expect(sink.dlp.map((a) => a.hit.sensor)).toEqual(['pci-pan']);
    expect(frames(Buffer.concat(sink.server), PREFACE.length)).not.toContain('0:1:end');
  });

  it('header block: a sensitive header value split between HEADERS and CONTINUATION at every offset — refused before anything reaches the server', () => {
    const block = encodeLiteralHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/pay'], [':authority', 'shop'], ['x-card', CARD], ['x-ssn', '536-22-1234']]);
    for (let k = 0; k <= block.length; k++) {
      for (const second of [1, 2]) {
        // HEADERS + CONTINUATION (+ a second CONTINUATION), END_HEADERS on the last.
        const cuts = second === 1 ? [k] : [Math.floor(k / 2), k];
        const pieces: Buffer[] = [];
        let at = 0;
        for (const c of [...cuts, block.length]) {
          pieces.push(block.subarray(at, c));
          at = c;
        }
        const headerFrames = pieces.map((piece, i) => buildFrame(i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, i === pieces.length - 1 ? FrameFlag.END_HEADERS : 0, 1, piece));
        const sink = new Sink();
        const filter = h2filter(sink);
        filter.clientData(Buffer.concat([PREFACE, SETTINGS, ...headerFrames]));
        filter.clientData(buildDataFrame(1, Buffer.from('{}'), true));
        const label = `cut at ${cuts.join(',')}`;
        expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.hit.field]), label).toEqual([['pci-pan', 'header', 'x-card'], ['us-ssn', 'header', 'x-ssn']]);
        // Nothing of stream 1 reached the server: no HEADERS, no CONTINUATION, no DATA.
        expect(frames(Buffer.concat(sink.server), PREFACE.length).filter((f) => f.split(':')[1] === '1' && f !== '3:1'), label).toEqual([]);
        expect(Buffer.concat(sink.server).includes(CARD), label).toBe(false);
        expect(frames(Buffer.concat(sink.client))[1], label).toBe('1:1');
      }
    }
  });

  it('response body: two DATA frames split at every offset — hit, the client never gets the response END_STREAM', () => {
    const body = Buffer.from(`{"note":"${'y'.repeat(20)}","ssn":"536-22-1234","n":1}`);
    const ssnEnd = body.indexOf('536-22-1234') + 11;
    for (let k = 0; k <= body.length; k++) {
      const sink = new Sink();
      const filter = h2filter(sink);
      filter.clientData(Buffer.concat([PREFACE, SETTINGS, buildHeadersFrames(1, encodeLiteralHeaderBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/me'], [':authority', 'shop']]), { endStream: true })]));
      const head = buildHeadersFrames(1, encodeLiteralHeaderBlock([[':status', '200'], ['content-type', 'application/json']]), { endStream: false });
      filter.serverData(Buffer.concat([head, buildDataFrame(1, body.subarray(0, k))]));
      filter.serverData(buildDataFrame(1, body.subarray(k), true));
      const at = `split at ${k}`;
      expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where]), at).toEqual([['us-ssn', 'response-body']]);
      const toClient = Buffer.concat(sink.client);
      expect(frames(toClient), at).not.toContain('0:1:end');
      expect(frames(toClient), at).toContain('3:1');
      expect(toClient.includes('536-22-1234'), at).toBe(false);
      if (k === ssnEnd || k === ssnEnd + 1) expect(toClient.includes('536-22'), at).toBe(false);
    }
  });
});

describe('HTTP/2 DLP: the frame-end hold', () => {
  const CARD = '4111111111111111';
  function h2filter(sink: Sink) {
    const policy = compilePolicy({ clusterRules: [], workloadRules: [], defaultAction: 'allow', mode: 'protect' });
    if (!('policy' in policy)) throw new Error('rules');
    const p = policy.policy;
    const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 8080 } };
    const dlp = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan'], patterns: [], action: 'block' });
    const filter = new ConnectionFilter({ facts, policy: () => p, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const, dlp }, sink, p.decideConnection(facts));
    filter.serverData(SETTINGS);
    filter.clientData(Buffer.concat([PREFACE, SETTINGS, post(1, '/pay'), post(3, '/other')]));
    return filter;
  }

  it('a frame ending in a card waits for the next DATA: a 17th digit releases both, in order, with the frames of other streams behind them', () => {
    const sink = new Sink();
    const filter = h2filter(sink);
    const first = buildDataFrame(1, Buffer.from(`n=${CARD}`));
    filter.clientData(first);
    expect(filter.tailHeld).toBe(true);
    expect(Buffer.concat(sink.server).includes(CARD)).toBe(false);
    filter.clientData(buildDataFrame(3, Buffer.from('{"ok":1}'), true)); // waits behind it: frames leave in order
    expect(frames(Buffer.concat(sink.server), PREFACE.length)).not.toContain('0:3:end');
    filter.clientData(buildDataFrame(1, Buffer.from('7&x=1'), true));
    const toServer = Buffer.concat(sink.server);
    expect(toServer.includes(`${CARD}`)).toBe(true);
    expect(frames(toServer, PREFACE.length).slice(-3)).toEqual(['0:1', '0:3:end', '0:1:end']);
    expect(filter.tailHeld).toBe(false);
    expect(sink.dlp).toEqual([]);
  });

  it('the hold timer: a card at the end of a frame with nothing after it is decided as a hit (fail closed), the server never gets it', () => {
    const sink = new Sink();
    const filter = h2filter(sink);
    filter.clientData(buildDataFrame(1, Buffer.from(`n=${CARD}`)));
    filter.clientData(buildDataFrame(3, Buffer.from('{"ok":1}'), true));
    filter.releaseTail();
    const toServer = Buffer.concat(sink.server);
    expect(toServer.includes(CARD)).toBe(false);
    expect(frames(toServer, PREFACE.length)).toContain('0:3:end'); // the other stream went on
    expect(frames(toServer, PREFACE.length)).toContain('3:1'); // stream 1 reset
    expect(sink.dlp.map((a) => [a.hit.sensor, a.blocked])).toEqual([['pci-pan', true]]);
    expect(filter.tailHeld).toBe(false);
  });

  it('trailers end the body: a card at the end of the last DATA is a hit, in the same read or the next', () => {
    const trailers = buildHeadersFrames(1, encodeLiteralHeaderBlock([['x-checksum', 'abc']]), { endStream: true });
    for (const together of [true, false]) {
      const sink = new Sink();
      const filter = h2filter(sink);
      const data = buildDataFrame(1, Buffer.from(`n=${CARD}`));
      if (together) filter.clientData(Buffer.concat([data, trailers]));
      else {
        filter.clientData(data);
        filter.clientData(trailers);
      }
      expect(Buffer.concat(sink.server).includes(CARD), String(together)).toBe(false);
      expect(sink.dlp.map((a) => a.hit.sensor), String(together)).toEqual(['pci-pan']);
      expect(filter.tailHeld).toBe(false);
    }
  });

  it('a client reset of the stream decides what waited (no card reaches the server)', () => {
    const sink = new Sink();
    const filter = h2filter(sink);
    filter.clientData(buildDataFrame(1, Buffer.from(`n=${CARD}`)));
    filter.clientData(buildFrame(FrameType.RST_STREAM, 0, 1, Buffer.from([0, 0, 0, 8])));
    expect(Buffer.concat(sink.server).includes(CARD)).toBe(false);
    expect(filter.tailHeld).toBe(false);
  });
});

describe('HTTP/2 DLP: clean bodies in any framing', () => {
  it('every DATA byte of two interleaved streams arrives in order and nothing stays held (frames split anywhere, values ending at frame ends)', () => {
    const digits = fc.string({ unit: fc.constantFrom(...'0123456789 -'), minLength: 1, maxLength: 24 });
    const word = fc.string({ unit: fc.constantFrom(...'abcdefghij"{}:,'), minLength: 0, maxLength: 16 });
    const text = fc.array(fc.oneof(digits, word), { minLength: 1, maxLength: 10 }).map((xs) => xs.join(''));
    let compared = 0;
    fc.assert(
      fc.property(text, text, fc.array(fc.nat(), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), (a, b, cutsA, cutsB, endWithTrailers) => {
        const policy = compilePolicy({ clusterRules: [], workloadRules: [], defaultAction: 'allow', mode: 'protect' });
        if (!('policy' in policy)) throw new Error('rules');
        const p = policy.policy;
        const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 8080 } };
        const dlp = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan', 'us-ssn'], patterns: [], action: 'block' });
        const sink = new Sink();
        const filter = new ConnectionFilter({ facts, policy: () => p, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const, dlp }, sink, p.decideConnection(facts));
        filter.serverData(SETTINGS);
        filter.clientData(Buffer.concat([PREFACE, SETTINGS, post(1, '/a'), post(3, '/b')]));
        const pieces = (body: string, cuts: number[]) => {
          const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((x, y) => x - y);
          const out: string[] = [];
          let at = 0;
          for (const q of points) {
            out.push(body.slice(at, q));
            at = q;
          }
          out.push(body.slice(at));
          return out;
        };
        const fa = pieces(a, cutsA);
        const fb = pieces(b, cutsB);
        // Interleaved, each frame its own read; the last frame of a stream ends it (or trailers do).
        for (let i = 0; i < Math.max(fa.length, fb.length); i++) {
          if (i < fa.length) filter.clientData(buildDataFrame(1, Buffer.from(fa[i]!), i === fa.length - 1 && !endWithTrailers));
          if (i < fb.length) filter.clientData(buildDataFrame(3, Buffer.from(fb[i]!), i === fb.length - 1));
        }
        if (endWithTrailers) filter.clientData(buildHeadersFrames(1, encodeLiteralHeaderBlock([['x-done', '1']]), { endStream: true }));
        if (sink.dlp.length > 0) return; // random digits that are a card: a cut, not compared
        // The DATA payloads the server got, per stream, in order.
        const got = new Map<number, string>();
        const toServer = Buffer.concat(sink.server);
        for (let at = PREFACE.length; at + 9 <= toServer.length; ) {
          const len = toServer.readUIntBE(at, 3);
          const id = toServer.readUInt32BE(at + 5) & 0x7fffffff;
          if (toServer[at + 3] === FrameType.DATA) got.set(id, (got.get(id) ?? '') + toServer.subarray(at + 9, at + 9 + len).toString('latin1'));
          at += 9 + len;
        }
        expect(got.get(1) ?? '').toBe(a);
        expect(got.get(3) ?? '').toBe(b);
        expect(filter.tailHeld).toBe(false);
        expect(filter.routedHeldBytes).toBe(0);
        compared++;
      }),
      { numRuns: 400 },
    );
    expect(compared).toBeGreaterThan(300);
  });
});

describe('HTTP/2 DLP: trailers (RFC 9113 §8.1)', () => {
  function setup() {
    const policy = compilePolicy({ clusterRules: [], workloadRules: [], defaultAction: 'allow', mode: 'protect' });
    if (!('policy' in policy)) throw new Error('rules');
    const p = policy.policy;
    const sink = new Sink();
    const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 8080 } };
    const dlp = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan', 'us-ssn'], patterns: [], action: 'block' });
    const filter = new ConnectionFilter({ facts, policy: () => p, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const, dlp }, sink, p.decideConnection(facts));
    filter.serverData(SETTINGS);
    return { sink, filter };
  }
  const trailers = (id: number, fields: Array<[string, string]>) => buildHeadersFrames(id, encodeLiteralHeaderBlock(fields), { endStream: true });

  it('a card in a request trailer block never reaches the server: the block is dropped, the stream reset, the client answered 403; clean trailers pass', () => {
    const { sink, filter } = setup();
    filter.clientData(Buffer.concat([PREFACE, SETTINGS, post(1, '/pay'), post(3, '/clean'), buildDataFrame(1, Buffer.from('{"a":1}')), buildDataFrame(3, Buffer.from('{"b":2}'))]));
    filter.clientData(Buffer.concat([trailers(1, [['x-card', '4111 1111 1111 1111']]), trailers(3, [['x-sum', 'abc']])]));
    const toServer = Buffer.concat(sink.server);
    expect(toServer.toString('latin1')).not.toContain('4111');
    const serverFrames = frames(toServer, PREFACE.length);
    expect(serverFrames).toContain('1:3:end'); // stream 3's trailers
    expect(serverFrames).not.toContain('1:1:end');
    expect(serverFrames).toContain('3:1'); // RST_STREAM 1
    expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.hit.field, a.blocked])).toEqual([['pci-pan', 'header', 'x-card', true]]);
    expect(sink.outcomes.find((o) => o.l7.path === '/pay')?.l7.status).toBe(403);
  });

  it('an SSN in a response trailer block: the stream is reset on both sides and the hit recorded', () => {
    const { sink, filter } = setup();
    filter.clientData(Buffer.concat([PREFACE, SETTINGS, buildHeadersFrames(1, encodeLiteralHeaderBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/me'], [':authority', 'shop']]), { endStream: true })]));
    filter.serverData(Buffer.concat([buildHeadersFrames(1, encodeLiteralHeaderBlock([[':status', '200']]), { endStream: false }), buildDataFrame(1, Buffer.from('ok'))]));
    filter.serverData(trailers(1, [['x-ssn', '536-22-1234']]));
    expect(frames(Buffer.concat(sink.client))).toContain('3:1');
    expect(frames(Buffer.concat(sink.server), PREFACE.length)).toContain('3:1');
    expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.hit.field, a.blocked])).toEqual([['us-ssn', 'header', 'x-ssn', true]]);
  });
});
