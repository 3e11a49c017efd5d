// gRPC bodies (gRPC over HTTP/2, PROTOCOL-HTTP2.md Length-Prefixed-Message): messages compressed
// per `grpc-encoding` (gzip, deflate) are inflated, bounded, and scanned; split anywhere; a
// compressed message the sidecar cannot read is undecodable (the enforcer fails closed on it).
import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DlpEngine, DEFAULT_DLP, type DlpHit } from '../../../src/content/dlp/index.js';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import { RecordingSink as Sink } from '../enforcement/filter-fixture.js';
import { compilePolicy } from '../../../src/policy/index.js';
import { buildDataFrame, buildFrame, buildHeadersFrames, FrameType } from '../../../src/protocols/http2/frames.js';
import { encodeLiteralHeaderBlock } from '../../../src/protocols/http2/hpack-encoder.js';
import { cutAt } from './body-splits.js';

const engine = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan', 'us-ssn'], patterns: [], action: 'block' });
const scope = engine.scope('egress', [], false)!;
const CARD = '4111 1111 1111 1111';

/** A protobuf-ish message: field 1 (string) = text. */
const proto = (text: string) => Buffer.concat([Buffer.from([0x0a]), Buffer.from([text.length & 0x7f | (text.length > 127 ? 0x80 : 0)]), ...(text.length > 127 ? [Buffer.from([text.length >> 7])] : []), Buffer.from(text)]);
function message(body: Buffer, compress?: 'gzip' | 'deflate'): Buffer {
  const payload = compress === 'gzip' ? gzipSync(body) : compress === 'deflate' ? deflateSync(body) : body;
  const head = Buffer.alloc(5);
  head[0] = compress === undefined ? 0 : 1;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

function scan(raw: Buffer, cuts: number[], encoding: string | undefined): DlpHit[] {
  const headers: Array<[string, string]> = [['content-type', 'application/grpc'], ...(encoding === undefined ? [] : [['grpc-encoding', encoding] as [string, string]])];
  const scanner = engine.body(scope, 'request-body', headers, false)!;
  const hits: DlpHit[] = [];
  for (const piece of cutAt(raw, cuts)) scanner.push(piece, hits);
  scanner.end(hits);
  return hits;
}

describe('DLP: gRPC messages', () => {
  it('a card in a gzip- or deflate-compressed message, among others, is a hit at any split', () => {
    fc.assert(
      fc.property(fc.constantFrom<'gzip' | 'deflate'>('gzip', 'deflate'), fc.nat({ max: 2 }), fc.array(fc.nat(), { maxLength: 16 }), (coding, where, cuts) => {
        const bodies = [proto(`{"n":"${'a'.repeat(200)}"}`), proto(`{"m":"${'b'.repeat(100)}"}`), proto(`{"k":"${'c'.repeat(50)}"}`)];
        bodies[where] = proto(`{"card":"${CARD}","pad":"${'d'.repeat(150)}"}`);
        const raw = Buffer.concat(bodies.map((b, i) => message(b, i === 1 ? undefined : coding)));
        const hits = scan(raw, cuts, coding);
        expect(hits.map((h) => h.sensor)).toEqual(['pci-pan']);
      }),
      { numRuns: 300 },
    );
  });

  it('clean compressed messages give no hit; the card is not visible in the compressed bytes (what was missed before)', () => {
    const raw = Buffer.concat([message(proto('{"orderId":"ORD-2026-000123","ts":"2026-12-03T19:00:00Z"}'), 'gzip'), message(proto('plain text'))]);
    expect(scan(raw, [7, 19], 'gzip')).toEqual([]);
    const secret = message(proto(`card=${CARD}`), 'gzip');
    expect(secret.toString('latin1')).not.toContain('4111');
    expect(scan(secret, [], 'gzip').map((h) => h.sensor)).toEqual(['pci-pan']);
  });

  it('a compressed message it cannot read is undecodable: unknown grpc-encoding, none declared, a bad flag, broken gzip, a bomb', () => {
    const compressed = message(proto(`x=${CARD}`), 'gzip');
    expect(scan(compressed, [], 'snappy').map((h) => h.sensor)).toEqual(['undecodable']);
    expect(scan(compressed, [], undefined).map((h) => h.sensor)).toEqual(['undecodable']);
    const badFlag = Buffer.from(compressed);
    badFlag[0] = 2;
    expect(scan(badFlag, [], 'gzip').map((h) => h.sensor)).toEqual(['undecodable']);
    const broken = Buffer.from(compressed);
    broken.fill(0x55, 15, 25);
    expect(scan(broken, [], 'gzip').map((h) => h.sensor)).toEqual(['undecodable']);
    const bomb = message(Buffer.alloc(20 * 1024 * 1024), 'gzip');
    const hits = scan(bomb, [], 'gzip');
    expect(hits.map((h) => [h.sensor, h.sample])).toEqual([['undecodable', 'decompression bomb']]);
  });

  it('through the HTTP/2 enforcer: a gzip-compressed gRPC message with a card ends the call with grpc-status 7; the server gets no DATA of it', () => {
    const policy = compilePolicy({ clusterRules: [], workloadRules: [], defaultAction: 'allow', mode: 'protect' });
    if (!('policy' in policy)) throw new Error('rules');
    const p = policy.policy;
    const sink = new Sink();
    const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 50051 } };
    const filter = new ConnectionFilter({ facts, policy: () => p, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const, dlp: engine }, sink, p.decideConnection(facts));
    filter.serverData(buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0)));
    const call = buildHeadersFrames(1, encodeLiteralHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/pay.v1.Payments/Charge'], [':authority', 'pay'], ['content-type', 'application/grpc'], ['grpc-encoding', 'gzip'], ['te', 'trailers']]), { endStream: false });
    filter.clientData(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0)), call, buildDataFrame(1, message(proto(`{"card":"${CARD}"}`), 'gzip'), true)]));
    const toServer = Buffer.concat(sink.server);
    expect(sink.dlp[0]).toMatchObject({ protocol: 'grpc', blocked: true, hit: { sensor: 'pci-pan', where: 'request-body' } });
    expect(sink.outcomes.find((o) => o.protocol === 'grpc')?.l7.grpcStatus).toBe(7);
    // No DATA frame of stream 1 reached the server: HEADERS then RST_STREAM.
    const types: number[] = [];
    for (let at = 24; at + 9 <= toServer.length; at += 9 + toServer.readUIntBE(at, 3)) types.push(toServer[at + 3]!);
    expect(types).not.toContain(FrameType.DATA);
    expect(types).toContain(FrameType.RST_STREAM);
  });
});
