// SSH anywhere in HTTP bodies and HTTP/2 (gRPC) streams, through the connection filter as the
// proxy runs it: past a body's first bytes, split at every position, across chunked framing,
// in the first of two pipelined requests, and in an HTTP/2 stream interleaved with another.
// In block mode nothing of the read that carries the banner reaches the server.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import { compilePolicy } from '../../../src/policy/index.js';
import { buildDataFrame, buildFrame, buildHeadersFrames, FrameType } from '../../../src/protocols/http2/frames.js';
import { encodeLiteralHeaderBlock } from '../../../src/protocols/http2/hpack-encoder.js';
import { createTunnelDetection } from '../../../src/tunnels/index.js';
import { SshScan } from '../../../src/tunnels/ssh-signature.js';
import { RecordingSink, split } from '../enforcement/filter-fixture.js';
import { randomBytes } from './helpers.js';

const BANNER = 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n';

function filter(mode: 'block' | 'alert' = 'block'): { sink: RecordingSink; f: ConnectionFilter } {
  const compiled = compilePolicy({ clusterRules: [], workloadRules: [], defaultAction: 'allow', mode: 'protect' });
  if (!('policy' in compiled)) throw new Error('rules');
  const policy = compiled.policy;
  const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 8080 } };
  const tunnels = createTunnelDetection({ ports: { 8080: 'http' } }).forConnection(facts, 'http');
  const sink = new RecordingSink();
  const f = new ConnectionFilter({ facts, policy: () => policy, declaredProtocol: 'http', tunnels, dnsMonitor: null, tunnelMode: () => mode }, sink, policy.decideConnection(facts));
  return { sink, f };
}

/** Text that is no carrier and no banner: a JSON-ish filler of `n` bytes. */
const filler = (n: number) => Buffer.from(`{"log":"${'connection from 10.1.2.3 accepted; Session opened. '.repeat(Math.ceil(n / 50))}`.slice(0, n));

describe('SSH past the first bytes of an HTTP/1 body', () => {
  it('finds a banner at any offset of a long body, cut at any two points; the read carrying it never reaches the server', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20_000 }), fc.array(fc.nat(), { maxLength: 3 }), (at, cuts) => {
        const body = Buffer.concat([filler(at), Buffer.from(BANNER), filler(300)]);
        const request = Buffer.concat([Buffer.from(`POST /upload HTTP/1.1\r\nhost: api\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n`), body]);
        const { sink, f } = filter();
        for (const piece of split(request, cuts)) f.clientData(piece);
        expect(sink.alerts.map((a) => a.kind)).toEqual(['ssh']);
        expect(sink.alerts[0]!.evidence).toContain(`at byte ${at}`);
        expect(sink.closed).toMatch(/^reset/);
        expect(Buffer.concat(sink.server).toString('latin1')).not.toContain('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n');
      }),
      { numRuns: 150 },
    );
  });

  it('reads a chunked body as its data: a banner cut by the chunk framing is found', () => {
    const data = Buffer.concat([filler(3000), Buffer.from(BANNER)]);
    const chunks: string[] = [];
    for (let i = 0; i < data.length; i += 7) {
      const part = data.subarray(i, i + 7);
      chunks.push(`${part.length.toString(16)}\r\n${part.toString('latin1')}\r\n`);
    }
    const request = Buffer.from(`POST /stream HTTP/1.1\r\nhost: api\r\ntransfer-encoding: chunked\r\n\r\n${chunks.join('')}0\r\n\r\n`, 'latin1');
    const { sink, f } = filter('alert');
    f.clientData(request);
    expect(sink.alerts).toMatchObject([{ kind: 'ssh', expected: 'http' }]);
    expect(sink.alerts[0]!.evidence).toContain('at byte 3000');
  });

  it('finds it in the first of two pipelined requests sent in one read, and in a response body', () => {
    const first = Buffer.concat([filler(1000), Buffer.from(BANNER)]);
    const two = Buffer.from(`POST /a HTTP/1.1\r\nhost: api\r\ncontent-length: ${first.length}\r\n\r\n${first.toString('latin1')}POST /b HTTP/1.1\r\nhost: api\r\ncontent-length: 5\r\n\r\nhello`, 'latin1');
    const a = filter('alert');
    a.f.clientData(two);
    expect(a.sink.alerts).toMatchObject([{ kind: 'ssh' }]);
    expect(a.sink.alerts[0]!.evidence).toContain('request body of POST /a');

    const b = filter('alert');
    b.f.clientData(Buffer.from('GET /logs HTTP/1.1\r\nhost: api\r\n\r\n'));
    const body = Buffer.concat([filler(5000), Buffer.from(BANNER)]);
    b.f.serverData(Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n`));
    for (const piece of split(body, [1000, 4990, 5005])) b.f.serverData(piece);
    expect(b.sink.alerts).toMatchObject([{ kind: 'ssh' }]);
    expect(b.sink.alerts[0]!.evidence).toContain('response body (200) to GET /logs');
  });

  it('does not take the next request head for a body, nor text quoting a banner', () => {
    // A header line that is a banner (after a body that ended) is no body.
    const { sink, f } = filter('alert');
    f.clientData(Buffer.from(`POST /a HTTP/1.1\r\nhost: api\r\ncontent-length: 2\r\n\r\nokGET /b HTTP/1.1\r\nhost: api\r\nx-note: x\r\n${BANNER.replace('SSH-2.0', 'x-ssh: SSH-2.0')}\r\n`));
    f.clientData(Buffer.from(`POST /c HTTP/1.1\r\nhost: api\r\ncontent-type: application/json\r\ncontent-length: 2100\r\n\r\n${filler(2000).toString()}"banner":"SSH-2.0-OpenSSH_9.2"}${' '.repeat(68)}`));
    expect(sink.alerts).toEqual([]);
  });
});

describe('SSH inside HTTP/2 and gRPC streams', () => {
  const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const SETTINGS = buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0));
  const call = (id: number) => buildHeadersFrames(id, encodeLiteralHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/tunnel.v1.Tunnel/Stream'], [':authority', 'api'], ['content-type', 'application/grpc']]), { endStream: false });

  it('finds a banner in a gRPC message, cut over DATA frames interleaved with another stream; nothing of it reaches the server', () => {
    const { sink, f } = filter();
    f.serverData(SETTINGS);
    f.clientData(Buffer.concat([PREFACE, SETTINGS, call(1), call(3)]));
    const message = Buffer.concat([Buffer.from([0, 0, 0, 0, BANNER.length]), Buffer.from(BANNER)]);
    f.clientData(Buffer.concat([buildDataFrame(3, randomBytes(1, 4000)), buildDataFrame(1, message.subarray(0, 9))]));
    expect(sink.alerts).toEqual([]);
    f.clientData(Buffer.concat([buildDataFrame(3, Buffer.from('SSH-2.0-x\r\n')), buildDataFrame(1, message.subarray(9))]));
    // Stream 3's bytes begin "SSH-" mid-stream with a complete line: SSH too. Either way, one alert and the cut.
    expect(sink.alerts.map((a) => a.kind)).toEqual(['ssh']);
    expect(sink.closed).toMatch(/^reset/);
    expect(Buffer.concat(sink.server).toString('latin1')).not.toContain('OpenSSH_9.2p1');
  });

  it('finds a banner past the first bytes of a stream whose frame is cut across reads', () => {
    const { sink, f } = filter('alert');
    f.serverData(SETTINGS);
    f.clientData(Buffer.concat([PREFACE, SETTINGS, call(1)]));
    const frame = buildDataFrame(1, Buffer.concat([filler(10_000), Buffer.from(BANNER)]), true);
    for (const piece of split(frame, [5, 9, 10, 10_020, 10_030])) f.clientData(piece);
    expect(sink.alerts).toMatchObject([{ kind: 'ssh', expected: 'http2' }]);
    expect(sink.alerts[0]!.evidence).toContain('request DATA of HTTP/2 stream 1 carries an SSH identification string at byte 10000');
  });

  it('stays silent on large binary and text streams both ways', () => {
    const { sink, f } = filter('alert');
    f.serverData(SETTINGS);
    f.clientData(Buffer.concat([PREFACE, SETTINGS, call(1)]));
    for (let i = 0; i < 20; i++) f.clientData(buildDataFrame(1, i % 2 === 0 ? randomBytes(i + 7, 16_000) : filler(16_000)));
    expect(sink.alerts).toEqual([]);
  });
});

describe('SshScan', () => {
  it('finds a banner fed byte by byte, once, and base64 only in its reach', () => {
    const scan = new SshScan(512);
    const stream = Buffer.concat([filler(700), Buffer.from(BANNER)]);
    const found = [];
    for (let i = 0; i < stream.length; i++) {
      const s = scan.feed(stream.subarray(i, i + 1));
      if (s !== null) found.push(s);
    }
    expect(found).toMatchObject([{ offset: 700, encoding: 'plain' }]);
    const b64 = Buffer.from(BANNER).toString('base64');
    expect(new SshScan(512).feed(Buffer.from(`{"d":"${b64}"}`))).toMatchObject({ encoding: 'base64' });
    expect(new SshScan(512).feed(Buffer.concat([filler(1000), Buffer.from(`{"d":"${b64}"}`)]))).toBeNull();
  });
});
