// DNS over TCP: an answer whose CNAME target the rules deny is replaced by REFUSED (the same
// decisions as the UDP listener, protocols/dns/dns-decisions.ts).
import { describe, expect, it } from 'vitest';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import type { FilterContext, FilterSink, RequestOutcome } from '../../../src/enforcement/types.js';
import { compilePolicy } from '../../../src/policy/index.js';
import { parseDnsMessage } from '../../../src/protocols/dns/dns-message.js';

const name = (n: string) => Buffer.concat([...n.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
const framed = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);

function query(id: number, qname: string): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2);
  h.writeUInt16BE(1, 4);
  return Buffer.concat([h, name(qname), Buffer.from([0, 1, 0, 1])]);
}

function cnameAnswer(id: number, qname: string, target: string): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x8180, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(2, 6);
  const t = name(target);
  return Buffer.concat([h, name(qname), Buffer.from([0, 1, 0, 1]), Buffer.from([0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, t.length]), t, t, Buffer.from([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 66])]);
}

class Sink implements FilterSink {
  client: Buffer[] = [];
  outcomes: RequestOutcome[] = [];
  toServer(): void {}
  toClient(b: Buffer): void {
    this.client.push(Buffer.from(b));
  }
  close(): void {}
  request(o: RequestOutcome): void {
    this.outcomes.push(o);
  }
  alert(): void {}
}

describe('DNS over TCP answers', () => {
  const r = compilePolicy({ clusterRules: [], workloadRules: [{ id: 'known', action: 'allow', dns: { names: ['**.example.com'] } }], defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in r)) throw new Error('policy');
  const policy = r.policy;

  it.each([
    ['target.example.com', 'NOERROR'],
    ['target.attacker.test', 'REFUSED'],
  ])('alias.example.com CNAME %s → %s', (target, rcode) => {
    const sink = new Sink();
    const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 53 } };
    const ctx: FilterContext = { facts, policy: () => policy, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' };
    const f = new ConnectionFilter(ctx, sink, policy.decideConnection(facts));
    f.clientData(framed(query(7, 'alias.example.com')));
    f.serverData(framed(cnameAnswer(7, 'alias.example.com', target)));
    const got = Buffer.concat(sink.client);
    const m = parseDnsMessage(got.subarray(2, 2 + got.readUInt16BE(0)), 'server');
    expect(m.rcodeName).toBe(rcode);
    expect(m.id).toBe(7);
    expect(got.includes(Buffer.from([10, 0, 0, 66]))).toBe(rcode === 'NOERROR');
    expect(sink.outcomes[0]).toMatchObject({ l7: { name: 'alias.example.com', rcode } });
  });
});
