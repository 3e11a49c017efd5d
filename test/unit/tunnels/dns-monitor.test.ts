// The pod-wide DNS tunnelling monitor: what iodine- and dnscat2-shaped query streams look like,
// and the label heuristic on its own.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUCKET_MS, FLAG_MS, looksEncoded, SlidingDnsMonitor, splitName, unsearch } from '../../../src/tunnels/dns-tunnel-monitor.js';
import { randomBytes } from './helpers.js';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz012345'; // iodine's base32 alphabet
function base32(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += BASE32[b & 31]!;
  return out;
}
/** A name carrying `bytes` the way iodine and friends do: labels of at most 63 characters. */
function tunnelName(data: string, domain: string): string {
  const labels = data.match(/.{1,63}/g) ?? [];
  return [...labels, domain].join('.');
}

describe('splitName', () => {
  it('groups by registrable parent, country second levels, and cluster namespaces', () => {
    expect(splitName('a.b.t.tun.test')).toEqual({ parent: 'tun.test', data: ['a', 'b', 't'] });
    expect(splitName('img.cdn.example.co.uk').parent).toBe('example.co.uk');
    expect(splitName('api.shop.svc.cluster.local')).toEqual({ parent: 'shop.svc.cluster.local', data: ['api'] });
    expect(splitName('example.com').data).toEqual([]);
  });
});

describe('unsearch (the pod search list: ndots:5, <ns>.svc, svc, cluster domain)', () => {
  it('turns a search-list expansion back into the external name it tries', () => {
    for (const n of ['api.github.com.shop.svc.cluster.local', 'api.github.com.svc.cluster.local', 'api.github.com.cluster.local', 'api.github.com']) {
      expect(unsearch(n, 'cluster.local', 'shop'), n).toBe('api.github.com');
    }
    expect(unsearch('x1.t1.example.test.shop.svc.cluster.local', 'cluster.local', 'shop')).toBe('x1.t1.example.test');
  });

  it("leaves the cluster's own names unmonitored: Services, StatefulSet members, SRV, pod IPs", () => {
 for (const n of ['payments.shop.svc.cluster.local', 'payments.shop.shop.svc.cluster.local', 'web-0.web.shop.svc.cluster.local',
      '_grpc._tcp.api.shop.svc.cluster.local', '10-1-2-3.shop.pod.cluster.local', 'kubernetes.default.svc.cluster.local']) {
      expect(unsearch(n, 'cluster.local', 'shop'), n).toBeNull();
    }
  });

  it('works without the namespace (any one label before svc) and with another cluster domain', () => {
    expect(unsearch('api.github.com.other.svc.cluster.local')).toBe('api.github.com');
    expect(unsearch('api.github.com.shop.svc.k8s.corp', 'k8s.corp', 'shop')).toBe('api.github.com');
    expect(unsearch('payments.shop.svc.k8s.corp', 'k8s.corp')).toBeNull();
  });
});

describe('looksEncoded', () => {
  it('recognises random base32, hex and binary labels', () => {
    let hits = 0;
    const runs = 400;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 32, max: 63 }), (seed, len) => {
        if (looksEncoded(base32(randomBytes(seed, len)))) hits++;
      }),
      { numRuns: runs },
    );
    expect(hits / runs).toBeGreaterThan(0.9);
    expect(looksEncoded(randomBytes(7, 20).toString('hex'))).toBe(true);
    expect(looksEncoded(randomBytes(7, 30).toString('latin1').toLowerCase())).toBe(true);
  });

  it('leaves names people and platforms choose alone', () => {
    for (const label of [
      'this-is-a-very-long-subdomain-name-for-testing', 'internal-k8s-default-web-1a2b3c4d5e', 'prod-us-west-2-ab12cd34ef56',
      'reallylongservicenamewithoutdashes', 'd3k81ch9hvuctc', 'r4---sn-4g5ednse', 'scontent-lax3-1', 'my-company-production-logs-bucket',
      'selector1-contoso-com', '_domainkey', 'ip-10-0-12-34', 'ec2-54-123-45-67', 'xn--bcher-kva', 'authentication-service-canary',
    ]) expect(looksEncoded(label), label).toBe(false);
  });
});

describe('SlidingDnsMonitor', () => {
  it('flags iodine-shaped NULL queries within three queries and keeps the parent flagged', () => {
    const m = new SlidingDnsMonitor();
    let now = 0;
    const results = [0, 1, 2].map((i) => m.onQuery(tunnelName(base32(randomBytes(i + 1, 90)), 't.tun.test'), 'NULL', (now += 50)));
    expect(results.slice(0, 2)).toEqual([null, null]);
    expect(results[2]).toMatchObject({ kind: 'dns-tunnel', detected: 'dns-tunnel' });
    expect(results[2]!.evidence).toContain('tun.test');
    // Flagged: even a short A query under the parent is refused from here on...
    expect(m.onQuery('vaaaakarb.t.tun.test', 'A', (now += 50))).toMatchObject({ kind: 'dns-tunnel' });
    // ...but not other domains, and not once the flag has expired.
    expect(m.onQuery('www.example.com', 'A', now)).toBeNull();
    expect(m.onQuery('vaaaakarb.t.tun.test', 'A', now + FLAG_MS + 2 * BUCKET_MS)).toBeNull();
  });

  it('blocks the zone that carries the tunnel, not its registrable domain: siblings keep resolving', () => {
    const m = new SlidingDnsMonitor();
    let now = 0;
    let finding = null;
    for (let i = 0; i < 20 && finding === null; i++) finding = m.onQuery(tunnelName(base32(randomBytes(40 + i, 100)), 't1.example.test'), 'TXT', (now += 100));
    expect(finding).not.toBeNull();
    expect(finding!.evidence).toContain('zone t1.example.test');
    expect(m.onQuery('zz.t1.example.test', 'A', (now += 10))).toMatchObject({ kind: 'dns-tunnel' });
    expect(m.onQuery('t1.example.test', 'A', (now += 10))).toMatchObject({ kind: 'dns-tunnel' });
    for (const sibling of ['www.example.test', 'api.example.test', 'mail.t2.example.test']) expect(m.onQuery(sibling, 'A', (now += 10)), sibling).toBeNull();
    // The tunnel moves to a sibling zone: found on its first encoded name, and the zone widens to their common parent.
    expect(m.onQuery(tunnelName(base32(randomBytes(99, 100)), 't2.example.test'), 'TXT', (now += 10))).toMatchObject({ kind: 'dns-tunnel' });
    expect(m.onQuery('www.example.test', 'A', (now += 10))).toMatchObject({ kind: 'dns-tunnel' });
  });

  it('a tunnel hiding behind the search list is still found, as the external name it expands', () => {
    const m = new SlidingDnsMonitor({ namespace: 'shop' });
    let finding = null;
    for (let i = 0; i < 20 && finding === null; i++) {
      const name = tunnelName(base32(randomBytes(200 + i, 60)), 't.tun.test');
      for (const suffix of ['.shop.svc.cluster.local', '.svc.cluster.local', '.cluster.local', '']) finding ??= m.onQuery(name + suffix, 'A', i * 100);
    }
    expect(finding).toMatchObject({ kind: 'dns-tunnel' });
    expect(finding!.evidence).toContain('tun.test');
  });

  it('flags encoded names of any record type after a handful of distinct names', () => {
    for (const type of ['A', 'TXT', 'CNAME', 'MX']) {
      const m = new SlidingDnsMonitor();
      let first = -1;
      for (let i = 0; i < 20 && first < 0; i++) if (m.onQuery(tunnelName(base32(randomBytes(100 + i, 100)), 't.tun.test'), type, i * 100) !== null) first = i;
      expect(first, type).toBeGreaterThanOrEqual(4);
      expect(first, type).toBeLessThan(12);
    }
  });

  it('flags dnscat2-shaped hex names', () => {
    const m = new SlidingDnsMonitor();
    const found = Array.from({ length: 12 }, (_, i) => m.onQuery(`${randomBytes(i + 9, 30).toString('hex')}.dnscat.example.org`, 'TXT', i * 200)).filter((f) => f !== null);
    expect(found.length).toBeGreaterThan(0);
  });

  it('flags many large answers for distinct names', () => {
    const m = new SlidingDnsMonitor();
    let finding = null;
    for (let i = 0; i < 12 && finding === null; i++) {
      const name = `host${i}.files.example.net`;
      m.onQuery(name, 'TXT', i * 100);
      finding = m.onResponse(name, 'TXT', 1100, 4, i * 100 + 5);
    }
    expect(finding).toMatchObject({ kind: 'dns-tunnel', confidence: 0.7 });
  });

  it('spreads over the sliding window: the same queries spaced out are not a tunnel', () => {
    const m = new SlidingDnsMonitor();
    const found = Array.from({ length: 30 }, (_, i) => m.onQuery(tunnelName(base32(randomBytes(300 + i, 100)), 't.tun.test'), 'A', i * 3 * BUCKET_MS));
    expect(found.every((f) => f === null)).toBe(true);
  });
});

describe("dns2tcp's control labels", () => {
  it('flag the zone at the first query of a session, and only that zone', () => {
    const m = new SlidingDnsMonitor();
    // As dns2tcp 0.5.2 sends them (tcpdump of dns2tcpc against dns2tcpd).
    const first = m.onQuery('AAAAAHJwAA.=auth.d.tun.test', 'TXT', 1000);
    expect(first).toMatchObject({ kind: 'dns-tunnel', confidence: 0.85 });
    expect(first!.evidence).toContain('zone d.tun.test');
    expect(first!.evidence).toContain("'=' in a label");
    // The session's data queries are refused; a sibling under the parent resolves.
    expect(m.onQuery('iS4AAAACCGhlbGxvLWRuczJ0Y3AK.d.tun.test', 'TXT', 1100)).toMatchObject({ kind: 'dns-tunnel' });
    expect(m.onQuery('www.tun.test', 'A', 1200)).toBeNull();
  });

  it('no host name, SRV, ACME or DNS-SD name in the benign shapes has one', () => {
    const m = new SlidingDnsMonitor();
    const names = ['_acme-challenge.www.example.com', '_ldap._tcp.dc._msdcs.corp.example.com', 'b._dns-sd._udp.example.org', 'xn--bcher-kva.example', 'host-1-2-3-4.compute.example.net'];
    for (const [i, name] of names.entries()) expect(m.onQuery(name, i % 2 === 0 ? 'TXT' : 'SRV', 1000 + i)).toBeNull();
  });
});
