// Rules generated from a learned model: they validate, allow what was learned (new ids on the
// same templates included), deny what was not, are ordered and deterministic.
import { beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { formatRules, generateRules, LearnModel, type LearnedRule } from '../../../src/learn/index.js';
import type { FlowRecord } from '../../../src/flows/types.js';
import { BACKEND, FRONTEND, dns, grpc, http, protect, resetClock, tcp, tls, verdictOf } from './helpers.js';

const backend = { ip: '10.2.0.7', workload: BACKEND };
const frontend = { ip: '10.3.0.9', workload: FRONTEND };
const resolver = { ip: '10.96.0.10' };
const external = { ip: '203.0.113.10' };

function typicalTraffic(): FlowRecord[] {
  const records: FlowRecord[] = [];
  for (let i = 0; i < 30; i++) {
    records.push(http('ingress', frontend, 8080, 'GET', `/api/carts/${1000 + i}`, 'cart.shop.svc.cluster.local'));
    records.push(http('ingress', frontend, 8080, 'POST', `/api/carts/${1000 + i}/items`, 'cart.shop.svc.cluster.local'));
    records.push(http('egress', backend, 80, 'GET', `/v1/products/${crypto.randomUUID()}`, 'backend.shop'));
    records.push(grpc(backend, 50051, 'shop.v1.Inventory', i % 2 === 0 ? 'Reserve' : 'Release'));
    records.push(dns(resolver, `backend.shop.svc.cluster.local`));
  }
  records.push(http('ingress', frontend, 8080, 'GET', '/healthz'));
  records.push(dns(resolver, 'api.stripe.com'));
  records.push(tls(external, 443, 'api.stripe.com'));
  records.push(tcp('egress', { ip: '10.2.0.8', workload: { namespace: 'shop', labels: { app: 'postgres' } } }, 5432, 'postgres'));
  return records;
}

function learn(records: readonly FlowRecord[], limits = {}): LearnModel {
  const model = new LearnModel(limits);
  for (const r of records) model.observe(r);
  return model;
}

beforeEach(() => resetClock());

describe('generateRules', () => {
  it('turns typical traffic into a few validated rules that allow it again', () => {
    const records = typicalTraffic();
    const rules = generateRules(learn(records));
    expect(rules.length).toBeLessThanOrEqual(10);
    const policy = protect(rules);
    for (const r of records) expect(verdictOf(policy, r).verdict, JSON.stringify(r.l7)).toBe('allowed');
    const byId = new Map(rules.map((r) => [r.id, r]));
    const inbound = [...byId.values()].find((r) => r.direction === 'ingress' && (r.http as { methods: string[]; paths: string[] } | undefined)?.methods.join() === 'POST');
    expect(inbound).toMatchObject({ peer: { namespace: 'web', labels: { app: 'frontend' } }, ports: [8080], protocol: 'http', http: { paths: ['/api/carts/*/items'] } });
    const products = rules.find((r) => (r.http as { methods: string[]; paths: string[] } | undefined)?.paths.includes('/v1/products/*'));
    expect(products?.peer).toEqual({ namespace: 'shop', labels: { app: 'backend' } }); // the pod-template-hash is not part of the peer
    expect(rules.find((r) => r.grpc !== undefined)?.grpc).toEqual({ services: ['shop.v1.Inventory'], methods: ['Release', 'Reserve'] });
    expect(rules.find((r) => r.tls !== undefined)).toMatchObject({ peer: { cidr: '203.0.113.10/32' }, ports: [443], tls: { sni: ['api.stripe.com'] } });
    expect(rules.find((r) => r.protocol === 'postgres')).toMatchObject({ ports: [5432], peer: { labels: { app: 'postgres' } } });
  });

  it('allows new ids on learned templates and denies new behaviour', () => {
    const policy = protect(generateRules(learn(typicalTraffic())));
    expect(verdictOf(policy, http('egress', backend, 80, 'GET', `/v1/products/${crypto.randomUUID()}`, 'backend.shop')).verdict).toBe('allowed');
    expect(verdictOf(policy, http('ingress', frontend, 8080, 'POST', '/api/carts/999999/items', 'cart.shop.svc.cluster.local')).verdict).toBe('allowed');
    const denied = [
      http('ingress', frontend, 8080, 'DELETE', '/api/carts/5', 'cart.shop.svc.cluster.local'), // new method
      http('ingress', frontend, 8080, 'GET', '/admin/users', 'cart.shop.svc.cluster.local'), // new path shape
      http('egress', { ip: '10.2.0.99', workload: { namespace: 'shop', labels: { app: 'payments' } } }, 80, 'GET', '/v1/products/1'), // new peer
      grpc(backend, 50051, 'shop.v1.Inventory', 'Purge'), // new gRPC method
      dns(resolver, 'exfil.evil.example'), // new name
      tls(external, 443, 'evil.example.org'), // new SNI
      tcp('egress', { ip: '198.51.100.1' }, 22), // new peer and port
    ];
    for (const r of denied) expect(verdictOf(policy, r), JSON.stringify(r.l7 ?? r.dst)).toEqual({ verdict: 'denied', ruleId: 'default' });
  });

  it('orders rules most specific first and gives each an id and provenance', () => {
    const rules = generateRules(learn(typicalTraffic()));
    expect(new Set(rules.map((r) => r.id)).size).toBe(rules.length);
    for (const r of rules) expect(r.description).toMatch(/^learned: \d+ \w+, first seen 2026-03-01T\S+Z, last seen 2026-03-01T\S+Z$/);
    // L7 rules before L4-only rules; within them named workloads before address blocks.
    const firstL4 = rules.findIndex((r) => r.http === undefined && r.grpc === undefined && r.dns === undefined && r.tls === undefined);
    const lastL7 = rules.map((r) => r.http !== undefined || r.grpc !== undefined || r.dns !== undefined || r.tls !== undefined).lastIndexOf(true);
    expect(firstL4).toBeGreaterThan(lastL7);
    const get = rules.find((r) => r.id.includes('8080-get'));
    expect(get?.description).toContain('learned: 31 requests'); // 30 cart reads and /healthz share the GET rule
  });

  it('is deterministic: the same records give the same text, in any order when no limit is hit', () => {
    const records = typicalTraffic();
    const a = formatRules(generateRules(learn(records)), 'yaml');
    const b = formatRules(generateRules(learn(records)), 'yaml');
    expect(b).toBe(a);
    const shuffled = [...records].reverse();
    expect(formatRules(generateRules(learn(shuffled)), 'yaml')).toBe(a);
  });

  it('collapses many sibling names to their parent, never past the registrable domain', () => {
    const records = Array.from({ length: 60 }, (_, i) => dns(resolver, `shard-${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}.cdn.example.com`));
    records.push(...Array.from({ length: 40 }, (_, i) => dns(resolver, `host${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}.example.org`)));
    records.push(dns(resolver, 'api.example.net'));
    const rules = generateRules(learn(records, { maxSiblings: 16 }));
    const names = rules.flatMap((r) => (r.dns as { names: string[] } | undefined)?.names ?? []);
    expect(names).toEqual(expect.arrayContaining(['*.cdn.example.com', '*.example.org', 'api.example.net']));
    expect(names.some((n) => n.endsWith('*.com') && !n.includes('example'))).toBe(false);
    const policy = protect(rules);
    expect(verdictOf(policy, dns(resolver, 'shard-zz.cdn.example.com')).verdict).toBe('allowed');
    expect(verdictOf(policy, dns(resolver, 'other.example.com')).verdict).toBe('denied');
  });

  it('folds many unknown addresses of one /24 into the block', () => {
    const records = Array.from({ length: 40 }, (_, i) => http('ingress', { ip: `192.168.7.${i + 1}` }, 9090, 'GET', '/metrics'));
    const model = learn(records, { maxPeersPerSubnet: 8 });
    const rules = generateRules(model);
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({ peer: { cidr: '192.168.7.0/24' }, http: { paths: ['/metrics'] } });
    expect(rules[0]!.description).toContain('learned: 40 requests');
    expect(model.folded).toBeGreaterThan(0);
  });

  it('leaves out a tcp rule where the same peer and port carried L7 (it would allow any request)', () => {
    const records = [http('egress', backend, 80, 'GET', '/v1/a'), tcp('egress', backend, 80)];
    const rules = generateRules(learn(records));
    expect(rules.map((r) => r.protocol)).toEqual(['http']);
    expect(verdictOf(protect(rules), http('egress', backend, 80, 'GET', '/v1/b')).verdict).toBe('denied');
  });

  it('prints annotation and patch forms that carry the same rules', () => {
    const rules = generateRules(learn(typicalTraffic()));
    const annotation = formatRules(rules, 'annotation', { lock: true });
    const parsed = parse(annotation) as Record<string, string>;
    expect(parsed['sidewall.io/mode']).toBe('protect');
    expect(parse(parsed['sidewall.io/rules']!)).toEqual(JSON.parse(JSON.stringify(rules)) as LearnedRule[]);
    const patch = JSON.parse(formatRules(rules, 'patch', { template: true })) as { spec: { template: { metadata: { annotations: Record<string, string> } } } };
    expect(parse(patch.spec.template.metadata.annotations['sidewall.io/rules']!)).toEqual(JSON.parse(JSON.stringify(rules)) as LearnedRule[]);
  });
});
