import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { checkRuleSource, formatIssue, type RuleIssue } from '../../../src/policy/index.js';

function issuesOf(rules: unknown, tier: 'cluster' | 'workload' = 'workload'): RuleIssue[] {
  return checkRuleSource(JSON.stringify(rules), 'rules.json', { tier });
}

const base = { id: 'r', action: 'allow' };

describe('checkRuleSource: valid input', () => {
  test('a full rule set in YAML has no issues', () => {
    const text = `
rules:
  - id: web-in
    action: allow
    log: true
    description: shop frontends may call the API
    direction: ingress
    peer: { namespace: shop, labels: { app: web }, serviceAccount: web }
    ports: [8080, "9000-9100"]
    http: { methods: [GET, post], paths: ["/api/**", "/items/*"], hosts: ["*.shop.svc"], headers: { x-env: prod } }
  - id: dns-out
    action: allow
    direction: [egress]
    protocol: dns
    dns: { names: ["**.example.com"], types: [A, aaaa, TYPE65] }
  - id: grpc-cart
    action: deny
    protocol: http2
    grpc: { services: ["shop.v1.*"], methods: ["Delete*"] }
  - id: tls-out
    action: allow
    tls: { sni: [api.example.com], alpn: [h2] }
  - id: v6
    action: deny
    peer: [{ cidr: "2001:db8::/32" }, { cidr: [10.0.0.0/8, 192.168.1.7] }]
  - id: l4
    action: deny
    protocol: tcp
    ports: 22
`;
    expect(checkRuleSource(text, 'r.yaml')).toEqual([]);
  });

  test('empty text, null and an empty list mean no rules', () => {
    expect(checkRuleSource('', 'a')).toEqual([]);
    expect(checkRuleSource('null', 'a')).toEqual([]);
    expect(checkRuleSource('[]', 'a')).toEqual([]);
    expect(checkRuleSource('{"rules": []}', 'a')).toEqual([]);
  });

  test('a sidecar config document is accepted (its rules are checked)', () => {
    expect(checkRuleSource('mode: protect\ndefaultAction: deny\nrules:\n  - {id: a, action: allow}\n', 'c.yaml')).toEqual([]);
  });

  test('pass is allowed in the cluster tier', () => {
    expect(issuesOf([{ ...base, action: 'pass' }], 'cluster')).toEqual([]);
  });
});

// Each case: a rules list, the expected index, field, and a fragment of the message.
const errorCases: Array<[string, unknown[], number | null, string, string]> = [
  ['unknown rule key with suggestion', [{ ...base, prots: [80] }], 0, 'prots', "did you mean 'ports'"],
  ['unknown rule key', [{ ...base, color: 'red' }], 0, 'color', "unknown key 'color'"],
  ['missing id', [{ action: 'allow' }], 0, 'id', 'is required'],
  ['id not a string', [{ id: 5, action: 'allow' }], 0, 'id', 'must be a string'],
  ['reserved id', [{ id: 'default', action: 'allow' }], 0, 'id', 'reserved'],
  ['id with spaces', [{ id: 'a b', action: 'allow' }], 0, 'id', 'not a valid id'],
  ['duplicate id', [base, { ...base }], 1, 'id', "duplicate id 'r' (also used by rules[0])"],
  ['missing action', [{ id: 'x' }], 0, 'action', 'is required'],
  ['bad action', [{ id: 'x', action: 'permit' }], 0, 'action', 'must be one of allow, deny'],
  ['pass in workload tier', [{ id: 'x', action: 'pass' }], 0, 'action', "'pass' is only allowed in cluster rules"],
  ['log not boolean', [{ ...base, log: 'yes' }], 0, 'log', 'must be true or false'],
  ['bad direction', [{ ...base, direction: 'inbound' }], 0, 'direction', "'inbound' is not a direction"],
  ['bad direction in list', [{ ...base, direction: ['ingress', 'out'] }], 0, 'direction[1]', "'out' is not a direction"],
  ['empty direction list', [{ ...base, direction: [] }], 0, 'direction', 'empty list'],
  ['peer not a mapping', [{ ...base, peer: '10.0.0.0/8' }], 0, 'peer', 'must be a mapping'],
  ['empty peer', [{ ...base, peer: {} }], 0, 'peer', 'needs at least one of'],
  ['unknown peer key', [{ ...base, peer: { namespaces: 'a' } }], 0, 'peer.namespaces', "did you mean 'namespace'"],
  ['IPv4 prefix too long', [{ ...base, peer: { cidr: '10.0.0.0/33' } }], 0, 'peer.cidr', "'10.0.0.0/33' is not a CIDR (prefix length must be 0–32)"],
  ['IPv6 prefix too long', [{ ...base, peer: { cidr: 'fd00::/129' } }], 0, 'peer.cidr', 'prefix length must be 0–128'],
  ['bad IPv4', [{ ...base, peer: { cidr: '10.0.0.256/32' } }], 0, 'peer.cidr', 'is not an IPv4 or IPv6 address'],
  ['octal-looking IPv4', [{ ...base, peer: { cidr: '010.0.0.0/8' } }], 0, 'peer.cidr', 'is not an IPv4 or IPv6 address'],
  ['bad IPv6', [{ ...base, peer: { cidr: 'fd00:::1/64' } }], 0, 'peer.cidr', 'is not an IPv4 or IPv6 address'],
  ['host bits set', [{ ...base, peer: { cidr: ['10.0.0.0/8', '10.1.2.3/16'] } }], 0, 'peer.cidr[1]', "did you mean '10.1.0.0/16'"],
  ['IPv6 host bits set', [{ ...base, peer: { cidr: 'fd00::1/64' } }], 0, 'peer.cidr', "did you mean 'fd00::/64'"],
  ['bad namespace', [{ ...base, peer: { namespace: 'Shop_1' } }], 0, 'peer.namespace', 'is not a namespace name'],
  ['label value not string', [{ ...base, peer: { labels: { version: 2 } } }], 0, 'peer.labels.version', 'quote it: "2"'],
  ['bad label key', [{ ...base, peer: { labels: { 'bad key': 'x' } } }], 0, 'peer.labels.bad key', 'is not a Kubernetes label key'],
  ['empty labels', [{ ...base, peer: { labels: {} } }], 0, 'peer.labels', 'non-empty mapping'],
  ['second peer bad', [{ ...base, peer: [{ namespace: 'a' }, { cidr: 'x' }] }], 0, 'peer[1].cidr', 'is not a CIDR'],
  ['port zero', [{ ...base, ports: [0] }], 0, 'ports[0]', 'is not a port (1–65535)'],
  ['port too large', [{ ...base, ports: 70000 }], 0, 'ports', 'is not a port (1–65535)'],
  ['reversed range', [{ ...base, ports: ['8100-8000'] }], 0, 'ports[0]', 'empty range (8100 > 8000)'],
  ['range out of bounds', [{ ...base, ports: ['1-70000'] }], 0, 'ports[0]', 'outside the port range'],
  ['port garbage', [{ ...base, ports: ['http'] }], 0, 'ports[0]', 'is not a port or port range'],
  ['port fraction', [{ ...base, ports: [80.5] }], 0, 'ports[0]', 'is not a port'],
  ['unknown protocol', [{ ...base, protocol: 'htpp' }], 0, 'protocol', "'htpp' is not a known protocol"],
  ['two L7 blocks', [{ ...base, http: {}, dns: {} }], 0, 'dns', 'at most one L7 block'],
  ['L7 block does not match protocol', [{ ...base, protocol: 'dns', http: { methods: ['GET'] } }], 0, 'http', "does not match protocol 'dns'"],
  ['L7 block with tcp', [{ ...base, protocol: 'tcp', tls: { sni: ['a.b'] } }], 0, 'tls', "protocol 'tcp' is decided when the connection opens"],
  ['unknown http key', [{ ...base, http: { method: ['GET'] } }], 0, 'http.method', "did you mean 'methods'"],
  ['bad method', [{ ...base, http: { methods: ['GE T'] } }], 0, 'http.methods[0]', 'is not an HTTP method'],
  ['path without slash', [{ ...base, http: { paths: ['api/*'] } }], 0, 'http.paths[0]', "must start with '/'"],
  ['path with query', [{ ...base, http: { paths: ['/a?b=1'] } }], 0, 'http.paths[0]', 'without the query string'],
  ['triple star', [{ ...base, http: { paths: ['/a/***'] } }], 0, 'http.paths[0]', "has '***'"],
  ['host with port', [{ ...base, http: { hosts: ['a.example.com:8080'] } }], 0, 'http.hosts[0]', 'has a port'],
  ['header value not string', [{ ...base, http: { headers: { 'x-a': 1 } } }], 0, 'http.headers.x-a', 'must be a string value pattern'],
  ['bad grpc service', [{ ...base, grpc: { services: ['shop/v1'] } }], 0, 'grpc.services[0]', 'is not a protobuf full name pattern'],
  ['double star mid-name', [{ ...base, dns: { names: ['a.**.com'] } }], 0, 'dns.names[0]', "'**' may only be the first part"],
  ['bad dns type', [{ ...base, dns: { types: ['AAA'] } }], 0, 'dns.types[0]', 'is not a DNS record type'],
  ['empty methods list', [{ ...base, http: { methods: [] } }], 0, 'http.methods', 'empty list'],
  ['method not a string', [{ ...base, http: { methods: [1] } }], 0, 'http.methods[0]', 'must be a string'],
  ['rule not a mapping', ['allow all'], 0, '', 'a rule must be a mapping'],
];

describe('checkRuleSource: every error names index and field', () => {
  test.each(errorCases)('%s', (_name, rules, index, field, fragment) => {
    const issues = issuesOf(rules);
    const hit = issues.find((i) => i.index === index && i.field === field);
    expect(hit, JSON.stringify(issues)).toBeDefined();
    expect(hit!.message).toContain(fragment);
    expect(hit!.source).toBe('rules.json');
  });

  test('all issues are reported at once, with the rule id', () => {
    const issues = issuesOf([
      { id: 'a', action: 'allow', ports: [0] },
      { id: 'ok', action: 'deny' },
      { id: 'b', action: 'nope', peer: { cidr: '1.2.3.4/40' } },
    ]);
    expect(issues.map((i) => [i.index, i.id, i.field])).toEqual([
      [0, 'a', 'ports[0]'],
      [2, 'b', 'action'],
      [2, 'b', 'peer.cidr'],
    ]);
  });

  test('document-level problems have index null', () => {
    expect(checkRuleSource('rules: 5', 's')[0]).toMatchObject({ index: null, field: '', message: expect.stringContaining('must be a list') });
    expect(checkRuleSource('- id: a\n  action: "allow\n', 's')[0]).toMatchObject({ index: null, message: expect.stringMatching(/line \d+, column \d+/) });
    expect(checkRuleSource('{"a": 1, "a": 2}', 's')[0]!.message).toContain('unique');
    expect(checkRuleSource('rulez: []', 's')[0]).toMatchObject({ index: null, field: 'rulez', message: expect.stringContaining("did you mean 'rules'") });
  });

  test('formatIssue prints FILE: rules[INDEX].FIELD: message', () => {
    const [issue] = issuesOf([base, { id: 'x', action: 'allow', peer: { cidr: '10.0.0.0/33' } }]);
    expect(formatIssue(issue!)).toBe("rules.json: rules[1].peer.cidr: '10.0.0.0/33' is not a CIDR (prefix length must be 0–32)");
    expect(formatIssue({ source: 'f', index: null, field: '', message: 'm' })).toBe('f: m');
  });
});

describe('checkRuleSource never throws', () => {
  test('on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        const issues = checkRuleSource(text, 'fuzz');
        expect(Array.isArray(issues)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  test('on arbitrary JSON values, including rule-shaped ones', () => {
    const ruleish = fc.record(
      {
        id: fc.oneof(fc.string(), fc.integer()),
        action: fc.oneof(fc.constantFrom('allow', 'deny', 'pass'), fc.anything()),
        peer: fc.oneof(fc.anything(), fc.record({ cidr: fc.oneof(fc.string(), fc.anything()), labels: fc.anything() })),
        ports: fc.oneof(fc.anything(), fc.array(fc.oneof(fc.integer(), fc.string()))),
        http: fc.anything(),
        dns: fc.record({ names: fc.anything(), types: fc.anything() }),
        protocol: fc.oneof(fc.string(), fc.constantFrom('http', 'dns', 'tcp')),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.array(ruleish)), (value) => {
        const issues = checkRuleSource(JSON.stringify(value) ?? '', 'fuzz', { tier: 'cluster' });
        for (const issue of issues) expect(typeof issue.message).toBe('string');
      }),
      { numRuns: 400 },
    );
  });
});
