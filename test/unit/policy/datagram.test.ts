// Non-TCP flows (decideDatagram): only udp/icmp rules and protocol-less deny/pass rules apply,
// nothing else opens them, and udp/icmp rules never touch TCP connections.
import { describe, expect, test } from 'vitest';
import { compilePolicy, type CompiledPolicy, type DatagramFacts, type Direction, type Mode } from '../../../src/policy/index.js';

function compile(workloadRules: unknown[], opts: { cluster?: unknown[]; defaultAction?: 'allow' | 'deny'; mode?: Mode } = {}): CompiledPolicy {
  const result = compilePolicy({ clusterRules: opts.cluster ?? [], workloadRules, defaultAction: opts.defaultAction ?? 'deny', mode: opts.mode ?? 'protect' });
  if (!('policy' in result)) throw new Error(JSON.stringify(result.issues));
  return result.policy;
}

function issues(workloadRules: unknown[]): string[] {
  const result = compilePolicy({ clusterRules: [], workloadRules, defaultAction: 'deny', mode: 'protect' });
  return 'issues' in result ? result.issues.map((i) => `${i.field}: ${i.message}`) : [];
}

function datagram(protocol: string, port: number, direction: Direction = 'egress', peerIp = '10.2.0.5'): DatagramFacts {
  const self = { ip: '10.1.0.9', port: 40000 };
  return direction === 'ingress'
    ? { direction, protocol, src: { ip: peerIp, port: 51000 }, dst: { ...self, port } }
    : { direction, protocol, src: self, dst: { ip: peerIp, port } };
}

describe('decideDatagram', () => {
  test('nothing allows non-TCP traffic by default, not even defaultAction: allow', () => {
    const p = compile([{ id: 'all-tcp', action: 'allow' }], { defaultAction: 'allow' });
    for (const proto of ['udp', 'icmp', 'ip-253']) {
      expect(p.decideDatagram(datagram(proto, proto === 'udp' ? 5353 : 0))).toMatchObject({ action: 'deny', verdict: 'denied', ruleId: 'default:non-tcp', tier: 'default' });
    }
    expect(p.decide({ direction: 'egress', src: { ip: '10.1.0.9', port: 1 }, dst: { ip: '10.2.0.5', port: 80 } }).ruleId).toBe('all-tcp');
  });

  test('udp rules match by port, peer and direction; icmp rules by peer and direction', () => {
    const p = compile([
      { id: 'syslog', action: 'allow', protocol: 'udp', ports: [514], direction: 'egress', peer: { cidr: '10.2.0.0/16' } },
      { id: 'quic-in', action: 'allow', protocol: 'udp', ports: '443', direction: 'ingress' },
      { id: 'ping-out', action: 'allow', protocol: 'icmp', direction: 'egress', peer: { cidr: ['10.2.0.5/32', 'fd00::/8'] } },
    ]);
    expect(p.decideDatagram(datagram('udp', 514)).ruleId).toBe('syslog');
    expect(p.decideDatagram(datagram('udp', 514, 'egress', '10.3.0.1')).ruleId).toBe('default:non-tcp');
    expect(p.decideDatagram(datagram('udp', 514, 'ingress')).ruleId).toBe('default:non-tcp');
    expect(p.decideDatagram(datagram('udp', 443, 'ingress')).ruleId).toBe('quic-in');
    expect(p.decideDatagram(datagram('icmp', 0)).ruleId).toBe('ping-out');
    expect(p.decideDatagram(datagram('icmp', 0, 'egress', 'fd00::7')).ruleId).toBe('ping-out');
    expect(p.decideDatagram(datagram('icmp', 0, 'ingress')).ruleId).toBe('default:non-tcp');
    // udp rules do not allow other IP protocols.
    expect(p.decideDatagram(datagram('ip-253', 0)).ruleId).toBe('default:non-tcp');
  });

  test('a deny or cluster pass without protocol applies; an allow without protocol does not', () => {
    const p = compile(
      [
        { id: 'open-tcp', action: 'allow', peer: { cidr: '10.2.0.0/16' } },
        { id: 'udp-any', action: 'allow', protocol: 'udp' },
      ],
      { cluster: [{ id: 'no-evil', action: 'deny', peer: { cidr: '10.9.0.0/16' } }, { id: 'hand-over', action: 'pass', peer: { cidr: '10.2.0.0/16' } }, { id: 'c-icmp', action: 'allow', protocol: 'icmp' }] },
    );
    expect(p.decideDatagram(datagram('udp', 9, 'egress', '10.9.1.1')).ruleId).toBe('no-evil');
    expect(p.decideDatagram(datagram('udp', 9)).ruleId).toBe('udp-any');
    // pass skips the cluster's icmp allow for 10.2/16; the workload tier has no icmp rule.
    expect(p.decideDatagram(datagram('icmp', 0)).ruleId).toBe('default:non-tcp');
    expect(p.decideDatagram(datagram('icmp', 0, 'egress', '10.4.0.1')).ruleId).toBe('c-icmp');
  });

  test('udp and icmp rules never decide TCP connections (no needs-l7 at accept)', () => {
    const p = compile([{ id: 'udp-53', action: 'deny', protocol: 'udp', ports: [80] }, { id: 'web', action: 'allow', ports: [80] }]);
    const conn = { direction: 'egress' as const, src: { ip: '10.1.0.9', port: 1 }, dst: { ip: '10.2.0.5', port: 80 } };
    expect(p.decideConnection(conn)).toMatchObject({ ruleId: 'web' });
    expect(p.decide({ ...conn, protocol: 'http', l7: { http: { method: 'GET', path: '/' } } }).ruleId).toBe('web');
    // An undetected connection is denied by deny rules that could apply to it: never by a udp one.
    expect(p.decideUndetected(conn).ruleId).toBe('web');
  });

  test('monitor and learn record would-deny and let it pass', () => {
    for (const mode of ['monitor', 'learn'] as const) {
      expect(compile([], { mode }).decideDatagram(datagram('udp', 1234))).toMatchObject({ action: 'allow', verdict: 'would-deny', ruleId: 'default:non-tcp' });
    }
  });

  test('schema: icmp takes no ports, udp/icmp take no L7 block, the default id is reserved', () => {
    expect(issues([{ id: 'x', action: 'allow', protocol: 'icmp', ports: [1] }])).toEqual(['ports: ICMP has no ports; leave ports out and match ICMP by peer and direction']);
    expect(issues([{ id: 'x', action: 'allow', protocol: 'udp', dns: { names: ['a.b'] } }])[0]).toMatch(/dns block does not match protocol 'udp'/);
    expect(issues([{ id: 'default:non-tcp', action: 'allow' }])[0]).toMatch(/reserved/);
    expect(issues([{ id: 'x', action: 'allow', protocol: 'UDP', ports: ['5000-5010'] }])).toEqual([]);
  });
});
