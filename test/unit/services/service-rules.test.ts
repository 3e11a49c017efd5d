// Rules on Services (issue 20): peer.service, and identity matchers on a cluster-IP destination
// (every ready endpoint for allow/pass, any for deny), through the WorkloadDirectory that builds
// the facts the gate gives the policy.
import { describe, expect, test } from 'vitest';
import { WorkloadDirectory } from '../../../src/identity/workload-directory.js';
import type { ServiceEntry } from '../../../src/identity/service-directory.js';
import { compilePolicy, validateRuleList, type CompiledPolicy, type FlowFacts, type RuleIssue } from '../../../src/policy/index.js';

function compile(workloadRules: unknown[], cluster: unknown[] = []): CompiledPolicy {
  const result = compilePolicy({ clusterRules: cluster, workloadRules, defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in result)) throw new Error(JSON.stringify(result.issues));
  return result.policy;
}

const payments: ServiceEntry = { namespace: 'shop', name: 'payments', clusterIPs: ['10.96.0.20', 'fd00:96::20'], ports: [{ port: 80, targetPort: 8080 }], selector: { app: 'payments' }, endpoints: ['10.1.0.1', '10.1.0.2'] };
const cart: ServiceEntry = { namespace: 'shop', name: 'cart', clusterIPs: ['10.96.0.21'], ports: [{ port: 80 }], selector: { app: 'cart' } };

function directory(): WorkloadDirectory {
  const d = new WorkloadDirectory(
    [
      { ip: '10.1.0.1', namespace: 'shop', pod: 'payments-a', labels: { app: 'payments', version: 'v1' }, serviceAccount: 'payments' },
      { ip: '10.1.0.2', namespace: 'shop', pod: 'payments-b', labels: { app: 'payments', version: 'v1' }, serviceAccount: 'payments' },
      { ip: '10.1.0.3', namespace: 'shop', pod: 'cart-a', labels: { app: 'cart' }, serviceAccount: 'cart' },
    ],
    [payments, cart],
  );
  return d;
}

function egress(d: WorkloadDirectory, ip: string, port = 80): FlowFacts {
  return { direction: 'egress', src: d.describe('10.1.0.9', 40000), dst: d.describe(ip, port, true) };
}

describe('the Service at a cluster IP', () => {
  test('both families of a dual-stack Service, and IPv4-mapped addresses, name it', () => {
    const d = directory();
    for (const ip of ['10.96.0.20', 'fd00:96::20', '::ffff:10.96.0.20']) expect(d.describe(ip, 80, true).service).toEqual({ namespace: 'shop', name: 'payments' });
    expect(d.describe('10.96.0.20', 80, false).service).toBeUndefined();
    expect(d.describe('10.96.0.99', 80, true).service).toBeUndefined();
  });

  test('the workload behind it is what every ready endpoint shares; records carry namespace and name only', () => {
    const dst = directory().describe('10.96.0.20', 80, true);
    expect(dst.workload).toEqual({ namespace: 'shop', serviceAccount: 'payments', labels: { app: 'payments', version: 'v1' } });
    expect(JSON.parse(JSON.stringify(dst))).toEqual({ ip: '10.96.0.20', port: 80, workload: dst.workload, service: { namespace: 'shop', name: 'payments' } });
    expect(dst.service?.endpoints?.map((e) => e.ip)).toEqual(['10.1.0.1', '10.1.0.2']);
  });

  test('a static Service without endpoints takes the selected workloads of its namespace; one endpoint names its pod', () => {
    const dst = directory().describe('10.96.0.21', 80, true);
    expect(dst.workload).toEqual({ namespace: 'shop', serviceAccount: 'cart', pod: 'cart-a', labels: { app: 'cart' } });
  });

  test('headless Services (clusterIP None) take no address', () => {
    const d = new WorkloadDirectory([], [{ namespace: 'shop', name: 'db', clusterIPs: ['None'], ports: [] }]);
    expect(d.services.size).toBe(1);
    expect(d.describe('None', 80, true).service).toBeUndefined();
  });
});

describe('peer.service', () => {
  const rules = [
    { id: 'payments', action: 'allow', direction: 'egress', peer: { service: 'shop/payments' } },
    { id: 'cart', action: 'allow', direction: 'egress', peer: { namespace: 'shop', service: ['cart'] } },
    { id: 'obj', action: 'allow', direction: 'egress', peer: { service: { namespace: 'other', name: 'payments' } } },
  ];
  test('matches calls to that Service and to no other address', () => {
    const d = directory();
    const p = compile(rules);
    expect(p.decide(egress(d, '10.96.0.20')).ruleId).toBe('payments');
    expect(p.decide(egress(d, 'fd00:96::20')).ruleId).toBe('payments');
    expect(p.decide(egress(d, '10.96.0.21')).ruleId).toBe('cart');
    // The pod IP itself is not the Service (a rule on the Service says nothing about its pods' IPs).
    expect(p.decide(egress(d, '10.1.0.1')).ruleId).toBe('default');
    expect(p.decideConnection(egress(d, '10.96.0.20'))).toMatchObject({ ruleId: 'payments' });
  });

  test('validation: a bare name needs the peer namespace; names are checked', () => {
    const issues: RuleIssue[] = [];
    const out = validateRuleList([
      { id: 'a', action: 'allow', peer: { service: 'payments' } },
      { id: 'b', action: 'allow', peer: { service: 'shop/Payments' } },
      { id: 'c', action: 'allow', peer: { service: [] } },
      { id: 'd', action: 'allow', peer: { service: { name: 'x' } } },
      { id: 'e', action: 'allow', peer: { namespace: ['shop', 'web'], service: 'api' } },
    ], 'test', 'workload', issues);
    expect(issues.map((i) => `${i.index}:${i.field}`)).toEqual(['0:peer.service', '1:peer.service', '2:peer.service', '3:peer.service']);
    expect(issues[0]!.message).toContain('names no namespace');
    expect(out.rules).toEqual([expect.objectContaining({ id: 'e', peer: [{ service: ['shop/api', 'web/api'] }] })]);
  });
});

describe('identity matchers on a cluster-IP destination', () => {
  test('an allow on labels matches when every ready endpoint carries them', () => {
    const d = directory();
    const p = compile([{ id: 'to-payments', action: 'allow', direction: 'egress', peer: { labels: { app: 'payments' }, serviceAccount: 'payments' } }]);
    expect(p.decide(egress(d, '10.96.0.20')).ruleId).toBe('to-payments');
  });

  test('a rollout that changes labels: the allow waits for every endpoint, a deny holds while any endpoint has them', () => {
    const allowV2 = compile([{ id: 'v2', action: 'allow', peer: { labels: { version: 'v2' } } }]);
    const denyV1 = compile([{ id: 'no-v1', action: 'deny', peer: { labels: { version: 'v1' } } }, { id: 'all', action: 'allow' }]);
    // Endpoints' identities from the controller's map, as in a cluster.
    const live = new WorkloadDirectory([], [payments]);
    live.replaceCluster([
      { ip: '10.1.0.1', namespace: 'shop', pod: 'payments-a', labels: { app: 'payments', version: 'v1' } },
      { ip: '10.1.0.2', namespace: 'shop', pod: 'payments-b', labels: { app: 'payments', version: 'v2' } },
    ]);
    expect(allowV2.decide(egress(live, '10.96.0.20')).ruleId).toBe('default');
    expect(denyV1.decide(egress(live, '10.96.0.20')).ruleId).toBe('no-v1');
    live.patchCluster([{ ip: '10.1.0.1', namespace: 'shop', pod: 'payments-a', labels: { app: 'payments', version: 'v2' } }], []);
    expect(allowV2.decide(egress(live, '10.96.0.20')).ruleId).toBe('v2');
    expect(denyV1.decide(egress(live, '10.96.0.20')).ruleId).toBe('all');
  });

  test('an endpoint whose workload is unknown, or no ready endpoint: label allows do not match (fail closed)', () => {
    const d = new WorkloadDirectory([{ ip: '10.1.0.1', namespace: 'shop', pod: 'payments-a', labels: { app: 'payments' } }], [
      { ...payments, endpoints: ['10.1.0.1', '10.9.9.9'] },
      { ...cart, selector: { app: 'nothing' } },
    ]);
    const p = compile([{ id: 'deny-a', action: 'deny', peer: { labels: { app: 'payments' } }, ports: 81 }, { id: 'allow-label', action: 'allow', peer: { labels: { app: 'payments' } } }, { id: 'allow-svc', action: 'allow', peer: { service: 'shop/cart' } }]);
    expect(p.decide(egress(d, '10.96.0.20')).ruleId).toBe('default');
    // ...but a deny on the labels of the one known endpoint still applies.
    expect(p.decide(egress(d, '10.96.0.20', 81)).ruleId).toBe('deny-a');
    expect(d.describe('10.96.0.21', 80, true).workload).toBeUndefined();
    expect(p.decide(egress(d, '10.96.0.21')).ruleId).toBe('allow-svc');
  });

  test("a deny rule's CIDR also covers the Service's endpoints; an allow CIDR only the dialled address", () => {
    const d = directory();
    const deny = compile([{ id: 'no-pod', action: 'deny', peer: { cidr: '10.1.0.2/32' } }, { id: 'all', action: 'allow' }]);
    expect(deny.decide(egress(d, '10.96.0.20')).ruleId).toBe('no-pod');
    const allow = compile([{ id: 'pods', action: 'allow', peer: { cidr: '10.1.0.0/24' } }, { id: 'svc-cidr', action: 'allow', peer: { cidr: '10.96.0.0/16' } }]);
    expect(allow.decide(egress(d, '10.96.0.20')).ruleId).toBe('svc-cidr');
    // Many CIDR rules on one port (the per-address narrowing) keep the endpoint check.
    const many = compile([...Array.from({ length: 40 }, (_, i) => ({ id: `n${i}`, action: 'deny', peer: { cidr: `192.168.${i}.0/24` } })), { id: 'no-pod', action: 'deny', peer: { cidr: '10.1.0.1/32' } }, { id: 'all', action: 'allow' }]);
    expect(many.decide(egress(d, '10.96.0.20')).ruleId).toBe('no-pod');
    expect(many.decide(egress(d, '10.96.0.20')).ruleId).toBe('no-pod');
  });

  test('ingress is unchanged: the caller is seen by its pod IP', () => {
    const d = directory();
    const facts: FlowFacts = { direction: 'ingress', src: d.describe('10.1.0.3', 5000), dst: d.describe('10.1.0.9', 80, false) };
    expect(facts.src.workload?.pod).toBe('cart-a');
    expect(facts.dst.service).toBeUndefined();
  });
});

describe('DNS names of Services and the Service map agree (issue 20 item 4)', () => {
  const rules = [
    { id: 'resolve-payments', action: 'allow', direction: 'egress', ports: 53, dns: { names: ['payments.shop.svc.cluster.local'] } },
    { id: 'call-payments', action: 'allow', direction: 'egress', peer: { service: 'shop/payments' }, ports: 80 },
  ];
  const resolver = (name: string): FlowFacts => ({ direction: 'egress', src: { ip: '10.1.0.9', port: 40000 }, dst: { ip: '10.96.0.10', port: 53 }, protocol: 'dns', l7: { dns: { name, type: 'A' } } });

  test("a DNS rule allows resolving the Service's name, and the connection rule names the Service", () => {
    const d = directory();
    const p = compile(rules);
    expect(p.decide(resolver('payments.shop.svc.cluster.local')).ruleId).toBe('resolve-payments');
    expect(p.decide(resolver('cart.shop.svc.cluster.local')).ruleId).toBe('default');
    expect(p.decide(egress(d, '10.96.0.20')).ruleId).toBe('call-payments');
  });

  test('the connection is decided by the address the app dials, never by the name it resolved', () => {
    // Whatever an answer for payments.shop.svc.cluster.local said (stale, spoofed), a call to an
    // address the map does not give to shop/payments is not a call to that Service.
    const d = directory();
    const p = compile(rules);
    expect(p.decide(egress(d, '10.96.0.21')).ruleId).toBe('default'); // cart's cluster IP
    expect(p.decide(egress(d, '203.0.113.9')).ruleId).toBe('default');
  });
});
