// Names matched label by label (no port or bracket handling, non-host-name labels fail closed),
// fail-closed detection (evasions of protocols/detect.ts, undetected flows under L7 deny rules,
// declared ports), rules for protocols nothing detects, and parse errors in monitor mode.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import type { FilterContext, FilterSink, RequestOutcome } from '../../../src/enforcement/types.js';
import { compilePolicy, type CompiledPolicy, type Mode } from '../../../src/policy/index.js';
import { normalizeName } from '../../../src/policy/glob.js';
import { detectClientProtocol, detectOnTimeout } from '../../../src/protocols/detect.js';
import { parseDnsMessage } from '../../../src/protocols/dns/dns-message.js';

function policyOf(rules: unknown[], defaultAction: 'allow' | 'deny' = 'allow', mode: Mode = 'protect'): CompiledPolicy {
  const r = compilePolicy({ clusterRules: [], workloadRules: rules, defaultAction, mode });
  if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

const conn = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 53 } };
const dns = (p: CompiledPolicy, name: string) => p.decide({ ...conn, protocol: 'dns', l7: { dns: { name, type: 'A' } } });
const sni = (p: CompiledPolicy, name: string) => p.decide({ ...conn, protocol: 'tls', l7: { tls: { sni: name } } });

describe('names (DNS, SNI)', () => {
  it('normalizeName keeps host names, refuses ports, brackets, empty labels and odd characters', () => {
    expect(normalizeName('Api.Example.COM.')).toBe('api.example.com');
    expect(normalizeName('_sip._tcp.example.com')).toBe('_sip._tcp.example.com');
    expect(normalizeName('')).toBe('');
    expect(normalizeName('.')).toBe('');
    for (const bad of ['t.svc.cluster.local:x.attacker.com', 'a.example.com:443', '[::1]', 'x]y.example.com', 'a..b', 'a b.com', 'a\\.b.com', '*.example.com', 'é.com', 'a'.repeat(64) + '.com']) {
      expect(normalizeName(bad), bad).toBeNull();
    }
  });

  it('a name with a port-like suffix is no longer allowed as the name before the colon', () => {
    const allowList = policyOf([{ id: 'svc', action: 'allow', dns: { names: ['*.svc.cluster.local'] } }], 'deny');
    expect(dns(allowList, 't.svc.cluster.local')).toMatchObject({ action: 'allow', ruleId: 'svc' });
    expect(dns(allowList, 't.svc.cluster.local:x.attacker.com')).toMatchObject({ action: 'deny', ruleId: 'default' });
    expect(dns(allowList, 'a\\.b.svc.cluster.local')).toMatchObject({ action: 'deny', ruleId: 'default' });
    const denyList = policyOf([{ id: 'evil', action: 'deny', dns: { names: ['**.attacker.com'] } }], 'allow');
    // A name we cannot read as a host name matches every deny rule that names names.
    expect(dns(denyList, 'x.attacker.com]y')).toMatchObject({ action: 'deny', ruleId: 'evil' });
    expect(dns(denyList, 'ok.example.com')).toMatchObject({ action: 'allow', ruleId: 'default' });
    const tls = policyOf([{ id: 'api', action: 'allow', tls: { sni: ['api.example.com'] } }], 'deny');
    expect(sni(tls, 'api.example.com')).toMatchObject({ ruleId: 'api' });
    expect(sni(tls, 'api.example.com:443')).toMatchObject({ ruleId: 'default' });
    expect(sni(tls, 'api.example.com]')).toMatchObject({ ruleId: 'default' });
  });

  it('never allows a non-host name by an allow pattern (fast-check)', () => {
    const allowAll = policyOf([{ id: 'all', action: 'allow', dns: { names: ['**'] } }], 'deny');
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (name) => {
        const d = dns(allowAll, name);
        expect(d.ruleId).toBe(normalizeName(name) === null ? 'default' : 'all');
      }),
      { numRuns: 2000 },
    );
  });

  it('the DNS parser writes a dot inside a label escaped, so it cannot read as two labels', () => {
    // Question: one label "a.b" (with the dot inside), then "svc", then root.
    const q = Buffer.concat([Buffer.from('123401000001000000000000', 'hex'), Buffer.from([3]), Buffer.from('a.b'), Buffer.from([3]), Buffer.from('svc'), Buffer.from([0, 0, 1, 0, 1])]);
    const m = parseDnsMessage(q);
    expect(m.qname).toBe('a\\.b.svc');
    expect(normalizeName(m.qname)).toBeNull();
    const spaced = Buffer.concat([Buffer.from('123401000001000000000000', 'hex'), Buffer.from([3]), Buffer.from('a b'), Buffer.from([0, 0, 1, 0, 1])]);
    expect(parseDnsMessage(spaced).qname).toBe('a\\032b');
  });

  it('reads CNAME and DNAME targets of the answer section, compressed or not', () => {
    // www.example.com CNAME evil.test (uncompressed), evil.test A 1.2.3.4 (owner compressed)
    const header = Buffer.from('1234818000010002000000000', 'hex').subarray(0, 12);
    const qname = Buffer.from('03777777076578616d706c6503636f6d00', 'hex');
    const question = Buffer.concat([qname, Buffer.from('00010001', 'hex')]);
    const target = Buffer.from('046576696c047465737400', 'hex');
    const cname = Buffer.concat([Buffer.from('c00c0005000100000e10', 'hex'), Buffer.from([0, target.length]), target]);
    const targetAt = 12 + question.length + 12;
    const a = Buffer.concat([Buffer.from([0xc0, targetAt]), Buffer.from('000100010000003c000401020304', 'hex')]);
    const m = parseDnsMessage(Buffer.concat([header, question, cname, a]), 'server');
    expect(m.aliases).toEqual(['evil.test']);
    expect(m.answers.map((x) => x.name)).toEqual(['www.example.com', 'evil.test']);
  });
});

describe('detection tolerates what servers tolerate', () => {
  const http = (text: string) => detectClientProtocol(Buffer.from(text, 'latin1'));
  it.each([
    ['leading CRLF', '\r\nGET /admin HTTP/1.1\r\n'],
    ['bare LF before the request', '\nGET /admin HTTP/1.1\r\n'],
    ['two spaces after the method', 'GET  /admin HTTP/1.1\r\n'],
    ['a tab separator', 'GET\t/admin HTTP/1.1\r\n'],
    ['an unknown method', 'FOO /admin HTTP/1.1\r\n'],
    ['HTTP/0.9', 'GET /admin\r\n'],
    ['an unknown method, line not complete', 'BREW /admin/x/y/z/aa'],
  ])('%s is HTTP', (_what, text) => {
    expect(http(text)).toMatchObject({ kind: 'match', protocol: 'http' });
  });

  it('text protocols are not taken for HTTP', () => {
    expect(http('SET key value\r\n')).toEqual({ kind: 'unknown' });
    expect(http('hello world, how are you?\n')).toEqual({ kind: 'unknown' });
  });

  it('a prefix cut by the detection timeout is read as the one protocol it can begin', () => {
    expect(detectOnTimeout(Buffer.from('G'))).toBe('http');
    expect(detectOnTimeout(Buffer.from('\r\nPO'))).toBe('http');
    expect(detectOnTimeout(Buffer.from('GET /adm'))).toBe('http');
    // A text protocol's word is not a cut request (it would wait for a request-line forever).
    expect(detectOnTimeout(Buffer.from('ping-egress'))).toBeNull();
    expect(detectOnTimeout(Buffer.from('\r\n'))).toBeNull();
    expect(detectOnTimeout(Buffer.from([0x16, 0x03]))).toBe('tls');
    expect(detectOnTimeout(Buffer.from([0x00, 0x00]))).toBe('postgres');
    expect(detectOnTimeout(Buffer.from('\x01\x02'))).toBeNull();
  });
});

class Sink implements FilterSink {
  server: Buffer[] = [];
  client: Buffer[] = [];
  outcomes: RequestOutcome[] = [];
  closed: string | null = null;
  toServer(b: Buffer): void {
    this.server.push(Buffer.from(b));
  }
  toClient(b: Buffer): void {
    this.client.push(Buffer.from(b));
  }
  close(how: 'fin' | 'reset', reason: string): void {
    this.closed ??= `${how}:${reason}`;
  }
  request(o: RequestOutcome): void {
    this.outcomes.push(o);
  }
  alert(): void {}
  get sent(): string {
    return Buffer.concat(this.server).toString('latin1');
  }
}

function filterFor(policy: CompiledPolicy, extra: Partial<FilterContext> = {}, port = 80): { f: ConnectionFilter; sink: Sink; errors: string[] } {
  const sink = new Sink();
  const errors: string[] = [];
  const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port } };
  const ctx: FilterContext = { facts, policy: () => policy, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off', countParserError: (p, c) => errors.push(`${p}:${c}`), ...extra };
  return { f: new ConnectionFilter(ctx, sink, policy.decideConnection(facts)), sink, errors };
}

describe('fail-closed detection in the connection filter', () => {
  const denyAdmin = [{ id: 'no-admin', action: 'deny', protocol: 'http', http: { paths: ['/admin/**'] } }];

  it('G, pause past the detection timeout, then the rest: parsed as HTTP, the deny rule applies', () => {
    const { f, sink } = filterFor(policyOf(denyAdmin));
    f.clientData(Buffer.from('G'));
    expect(f.detecting).toBe(true);
    f.detectTimeout();
    f.clientData(Buffer.from('ET /admin/x HTTP/1.1\r\nhost: a\r\n\r\n'));
    expect(sink.sent).toBe('');
    expect(sink.outcomes[0]).toMatchObject({ protocol: 'http', decision: { ruleId: 'no-admin', action: 'deny' } });
  });

  it.each([
    ['leading CRLF', '\r\nGET /admin/x HTTP/1.1\r\nhost: a\r\n\r\n'],
    ['unknown method', 'FOO /admin/x HTTP/1.1\r\nhost: a\r\n\r\n'],
    ['HTTP/0.9', 'GET /admin/x\r\n'],
    ['tab', 'GET\t/admin/x HTTP/1.1\r\nhost: a\r\n\r\n'],
  ])('%s never reaches the server unparsed', (_what, text) => {
    const { f, sink } = filterFor(policyOf(denyAdmin));
    f.clientData(Buffer.from(text, 'latin1'));
    expect(sink.sent).not.toContain('/admin');
  });

  it('unrecognised bytes on a flow an L7 deny rule could apply to are denied, and the record says why', () => {
    const { f, sink } = filterFor(policyOf(denyAdmin));
    f.clientData(Buffer.alloc(30, 0x01));
    expect(sink.closed).toBe('reset:denied');
    expect(f.decision).toMatchObject({ ruleId: 'no-admin', verdict: 'denied' });
    expect(f.l7).toEqual({ detection: 'unknown' });
  });

  it('unrecognised bytes pass as TCP where no L7 deny rule applies (another port)', () => {
    const { f, sink } = filterFor(policyOf([{ ...denyAdmin[0], ports: [8080] }]));
    f.clientData(Buffer.alloc(30, 0x01));
    expect(sink.closed).toBeNull();
    expect(sink.server.length).toBe(1);
  });

  it('in monitor mode an undetected flow is recorded as would-deny and passes', () => {
    const { f, sink } = filterFor(policyOf(denyAdmin, 'allow', 'monitor'));
    f.clientData(Buffer.alloc(30, 0x01));
    expect(sink.closed).toBeNull();
    expect(f.decision).toMatchObject({ verdict: 'would-deny' });
    expect(f.l7).toEqual({ detection: 'unknown' });
  });

  it('on a declared port what detection does not recognise is parsed as the declared protocol', () => {
    const { f, sink } = filterFor(policyOf(denyAdmin, 'allow'), { declaredProtocol: 'http' }, 8080);
    // Not HTTP at all: the HTTP parser refuses it and the connection is reset.
    f.clientData(Buffer.concat([Buffer.alloc(30, 0x01), Buffer.from('\r\n\r\n')]));
    expect(sink.closed).toMatch(/^reset:parser-error/);
    expect(f.protocol).toBe('http');
    expect(sink.sent).toBe('');
  });

  it('parse errors are counted; monitor records and passes them, protect resets', () => {
    const bad = Buffer.from('GET /x HTTP/1.1\r\nbad header line\r\n\r\n');
    const prot = filterFor(policyOf(denyAdmin));
    prot.f.clientData(bad);
    expect(prot.sink.closed).toMatch(/^reset:parser-error:/);
    expect(prot.errors.length).toBe(1);
    expect(prot.errors[0]).toMatch(/^http:ERR_/);
    const mon = filterFor(policyOf(denyAdmin, 'allow', 'monitor'));
    mon.f.clientData(bad);
    expect(mon.sink.closed).toBeNull();
    expect(mon.sink.sent).toBe(bad.toString('latin1'));
    expect(mon.f.l7).toMatchObject({ parseError: expect.stringMatching(/^ERR_/) });
    mon.f.clientData(Buffer.from('more'));
    expect(mon.sink.sent.endsWith('more')).toBe(true);
    const monReset = filterFor(policyOf(denyAdmin, 'allow', 'monitor'), { onParseError: 'reset' });
    monReset.f.clientData(bad);
    expect(monReset.sink.closed).toMatch(/^reset:parser-error:/);
  });
});

describe('rules', () => {
  it.each(['kafka', 'mongodb', 'amqp', 'mqtt'])('a rule for %s (nothing detects it) is refused', (protocol) => {
    const r = compilePolicy({ clusterRules: [], workloadRules: [{ id: 'x', action: 'deny', protocol }], defaultAction: 'allow', mode: 'protect' });
    expect('issues' in r && r.issues[0]?.message).toMatch(/not detected by the sidecar/);
  });
});
