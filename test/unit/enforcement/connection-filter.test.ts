// The L7 firewall without sockets: bytes in, bytes out, records, for any way the stream is cut
// into chunks.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import { compilePolicy } from '../../../src/policy/index.js';
import { filterFor, policyOf, RecordingSink, split } from './filter-fixture.js';
import { buildFrame, buildHeadersFrames, FrameType } from '../../../src/protocols/http2/frames.js';
import { encodeLiteralHeaderBlock } from '../../../src/protocols/http2/hpack-encoder.js';
import type { TunnelFinding } from '../../../src/tunnels/types.js';

const POLICY = policyOf([{ id: 'public', action: 'allow', protocol: 'http', http: { paths: ['/public/**'] } }]);

const newFilter = (sink: RecordingSink, policy = POLICY) => filterFor(sink, policy, 80);

const req = (path: string) => `GET ${path} HTTP/1.1\r\nhost: peer\r\n\r\n`;
const res = (body: string) => `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`;

describe('HTTP/1 enforcement', () => {
  it('forwards exactly the allowed pipelined requests, whatever the chunking, and answers 403 after the allowed responses', () => {
    const client = Buffer.from(req('/public/1') + req('/private/2') + req('/public/3'));
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 8 }), (cuts) => {
        const sink = new RecordingSink();
        const filter = newFilter(sink);
        for (const chunk of split(client, cuts)) filter.clientData(chunk);
        // Only the first request reached the server; the rest is held or dropped.
        expect(Buffer.concat(sink.server).toString()).toBe(req('/public/1'));
        expect(sink.client).toEqual([]); // no 403 before the server answered request 1
        filter.serverData(Buffer.from(res('one')));
        const toClient = Buffer.concat(sink.client).toString();
        expect(toClient.startsWith(res('one'))).toBe(true);
        expect(toClient.slice(res('one').length)).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
        expect(sink.closed).toBe('fin:denied');
        expect(sink.outcomes.map((o) => [o.l7.path, o.l7.status, o.decision.ruleId])).toEqual([
          ['/public/1', 200, 'public'],
          ['/private/2', 403, 'default'],
        ]);
      }),
      { numRuns: 200 },
    );
  });

  it('passes a request body through unchanged and holds the next head for its own verdict', () => {
    const body = 'x'.repeat(5000);
    const post = `POST /public/up HTTP/1.1\r\nhost: peer\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    for (const chunk of split(Buffer.from(post + req('/private/next')), [17, 100, 3000, 5050])) filter.clientData(chunk);
    expect(Buffer.concat(sink.server).toString()).toBe(post);
  });
});

describe('HTTP/1 exchanges and refusals', () => {
  it('records a request answered 100 Continue then 200, listing the 1xx', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(Buffer.from('POST /public/up HTTP/1.1\r\nhost: peer\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n'));
    filter.serverData(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'));
    filter.clientData(Buffer.from('ok'));
    filter.serverData(Buffer.from(res('done')));
    filter.clientData(Buffer.from(req('/public/next')));
    filter.serverData(Buffer.from(res('two')));
    expect(sink.outcomes.map((o) => [o.l7.path, o.l7.status, o.l7.informational])).toEqual([
      ['/public/up', 200, [100]],
      ['/public/next', 200, undefined],
    ]);
  });

  it.each([
    ['an escaped slash', 'GET /public/..%2fadmin HTTP/1.1\r\nhost: peer\r\n\r\n'],
    ['an absolute-form target naming another host', 'GET http://secret.example/public/x HTTP/1.1\r\nhost: peer\r\n\r\n'],
    ['a backslash', 'GET /public\\..\\admin HTTP/1.1\r\nhost: peer\r\n\r\n'],
  ])('answers 400 to %s, forwards nothing and records the refusal', (_name, request) => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(Buffer.from(request, 'latin1'));
    expect(sink.server).toEqual([]);
    expect(Buffer.concat(sink.client).toString()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(sink.outcomes).toMatchObject([{ l7: { status: 400 }, decision: { ruleId: 'http:invalid-target', verdict: 'denied' } }]);
    expect(sink.closed).toBe('fin:denied');
  });

  it('decides on the normalised path: a dot segment cannot climb out of an allowed prefix', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(Buffer.from(req('/public/%2e%2e/admin')));
    expect(sink.server).toEqual([]);
    expect(sink.outcomes).toMatchObject([{ l7: { status: 403, normalizedPath: '/admin' }, decision: { verdict: 'denied' } }]);
  });

  it('closes on a response with no request outstanding, raises an alert and keeps that response from the client', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(Buffer.from(req('/public/a')));
    filter.serverData(Buffer.from(res('one') + res('smuggled-answer')));
    const toClient = Buffer.concat(sink.client).toString();
    expect(toClient).toBe(res('one'));
    expect(sink.alerts.map((a) => a.kind)).toEqual(['http-desync']);
    expect(sink.closed).toMatch(/^reset:parser-error:ERR_PROTOCOL_VIOLATION/);
  });

  it('closes when a 101 answers a request that asked for no upgrade', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(Buffer.from(req('/public/a')));
    filter.serverData(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nraw'));
    expect(Buffer.concat(sink.client).toString()).toBe('');
    expect(sink.closed).toMatch(/^reset:parser-error:ERR_PROTOCOL_VIOLATION/);
    filter.clientData(Buffer.from('anything'));
    expect(Buffer.concat(sink.server).toString()).toBe(req('/public/a'));
  });
});

describe('HTTP/2 after an h2c upgrade', () => {
  it('keeps per-stream verdicts on the upgraded connection', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    const upgrade = 'GET /public/up HTTP/1.1\r\nhost: peer\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n';
    filter.clientData(Buffer.from(upgrade));
    expect(Buffer.concat(sink.server).toString()).toBe(upgrade);
    const serverSettings = buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0));
    filter.serverData(Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n'), serverSettings]));
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const settings = buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0));
    const headers = (id: number, path: string) =>
      buildHeadersFrames(id, encodeLiteralHeaderBlock([[':method', 'GET'], [':scheme', 'http'], [':path', path], [':authority', 'peer']]), { endStream: true });
    const before = Buffer.concat(sink.server).length;
    filter.clientData(Buffer.concat([preface, settings, headers(3, '/private/x'), headers(5, '/public/y')]));
    const sent = Buffer.concat(sink.server).subarray(before);
    // The server got the preface, SETTINGS and stream 5 — not stream 3.
    expect(sent.equals(Buffer.concat([preface, settings, headers(5, '/public/y')]))).toBe(true);
    const toClient = Buffer.concat(sink.client);
    expect(toClient.includes(Buffer.from('denied by sidewall'))).toBe(true);
    expect(sink.outcomes.find((o) => o.l7.path === '/private/x')?.decision.verdict).toBe('denied');
  });
});

describe('server greetings and ends (issue 15)', () => {
  const SMTP_GREETING = Buffer.from('220 mail.example.com ESMTP ready\r\n');

  function smtpFilter(rules: unknown[], mode: 'protect' | 'monitor' = 'protect'): { filter: ConnectionFilter; sink: RecordingSink } {
    const r = compilePolicy({ clusterRules: [], workloadRules: rules, defaultAction: 'deny', mode });
    if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
    const policy = r.policy;
    const sink = new RecordingSink();
    const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 25 } };
    const ctx = { facts, policy: () => policy, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const };
    return { filter: new ConnectionFilter(ctx, sink, policy.decideConnection(facts)), sink };
  }

  it('a greeting behind a connection the protocol decides is held, and dropped when the decision denies', () => {
    // Allowed only as http: an SMTP server's greeting must not reach the client.
    const { filter, sink } = smtpFilter([{ id: 'web', action: 'allow', protocol: 'http' }]);
    filter.serverData(Buffer.from(SMTP_GREETING.subarray(0, 5)));
    expect(sink.client).toEqual([]);
    expect(filter.detecting).toBe(true);
    filter.serverData(Buffer.from(SMTP_GREETING.subarray(5)));
    if (sink.closed === null) filter.detectTimeout();
    expect(Buffer.concat(sink.client).length).toBe(0);
    expect(sink.closed).toBe('reset:denied');
    expect(filter.heldServerBytes).toBe(0);
  });

  it('the held greeting goes out, once, when the connection is allowed', () => {
    const { filter, sink } = smtpFilter([{ id: 'web', action: 'allow', protocol: 'http' }, { id: 'smtp', action: 'allow', protocol: 'smtp' }, { id: 'tcp', action: 'allow', ports: [25] }]);
    filter.serverData(Buffer.from(SMTP_GREETING));
    if (filter.detecting) filter.detectTimeout();
    filter.serverData(Buffer.from('250 ok\r\n'));
    expect(Buffer.concat(sink.client).toString()).toBe(`${SMTP_GREETING.toString()}250 ok\r\n`);
    expect(sink.closed).toBeNull();
  });

  it('allowed at accept, or in monitor mode: the greeting is forwarded at once', () => {
    for (const { filter, sink } of [smtpFilter([{ id: 'all', action: 'allow' }]), smtpFilter([{ id: 'web', action: 'allow', protocol: 'http' }], 'monitor')]) {
      filter.serverData(Buffer.from(SMTP_GREETING));
      expect(Buffer.concat(sink.client).equals(SMTP_GREETING)).toBe(true);
      if (filter.detecting) filter.detectTimeout();
      expect(Buffer.concat(sink.client).equals(SMTP_GREETING)).toBe(true);
    }
  });

  it('FIN in the middle of a request head drops the unfinished head: the server gets the FIN, never the bytes', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(Buffer.from('GET /public/a HTTP/1.1\r\nhost: x\r\n\r\n'));
    expect(filter.atRest).toBe(false); // a request is open until its response ends
    filter.serverData(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
    expect(filter.atRest).toBe(true);
    filter.clientData(Buffer.from('GET /public/b HTTP/1.1\r\nX-a: '));
    expect(filter.heldBytes).toBeGreaterThan(0);
    expect(filter.atRest).toBe(false);
    expect(filter.clientEnd()).toBe(true);
    expect(filter.heldBytes).toBe(0);
    expect(Buffer.concat(sink.server).toString()).toBe('GET /public/a HTTP/1.1\r\nhost: x\r\n\r\n');
  });
});
