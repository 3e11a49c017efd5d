// HTTP/2 DLP without sockets: DATA frames of a scanned stream are held until scanned; a card in
// a request body resets the server's stream before END_STREAM and answers the client 403 on that
// stream; the connection's other streams go on.
import { describe, expect, it } from 'vitest';
import { DlpEngine, DEFAULT_DLP } from '../../../src/content/dlp/index.js';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import { RecordingSink as Sink } from '../enforcement/filter-fixture.js';
import { compilePolicy } from '../../../src/policy/index.js';
import { buildDataFrame, buildFrame, buildHeadersFrames, FrameType } from '../../../src/protocols/http2/frames.js';
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
