import { describe, expect, test } from 'vitest';
import { compilePolicy, type CompiledPolicy, type Direction, type FlowFacts, type L7Facts, type Mode, type Workload } from '../../../src/policy/index.js';

function compile(workloadRules: unknown[], opts: { cluster?: unknown[]; defaultAction?: 'allow' | 'deny'; mode?: Mode } = {}): CompiledPolicy {
  const result = compilePolicy({
    clusterRules: opts.cluster ?? [],
    workloadRules,
    defaultAction: opts.defaultAction ?? 'deny',
    mode: opts.mode ?? 'protect',
  });
  if (!('policy' in result)) throw new Error(JSON.stringify(result.issues));
  return result.policy;
}

interface FlowOptions {
  direction?: Direction;
  peerIp?: string;
  port?: number;
  peer?: Workload;
  protocol?: string;
  l7?: L7Facts;
}

/** A flow whose peer (src for ingress, dst otherwise) has the given address and workload. */
function flow(o: FlowOptions = {}): FlowFacts {
  const direction = o.direction ?? 'egress';
  const self = { ip: '10.1.0.9', port: 40000 };
  const peer = { ip: o.peerIp ?? '10.2.0.5', port: o.port ?? 80, ...(o.peer && { workload: o.peer }) };
  const facts: FlowFacts =
    direction === 'ingress'
      ? { direction, src: { ...peer, port: 51000 }, dst: { ...self, port: o.port ?? 80 } }
      : { direction, src: self, dst: peer };
  if (o.protocol !== undefined) facts.protocol = o.protocol;
  if (o.l7 !== undefined) facts.l7 = o.l7;
  return facts;
}

const ruleIdOf = (p: CompiledPolicy, o: FlowOptions): string => p.decide(flow(o)).ruleId;

describe('ordering and tiers', () => {
  test('first matching rule wins, default when none match', () => {
    const p = compile([
      { id: 'deny-22', action: 'deny', ports: 22 },
      { id: 'allow-all', action: 'allow' },
      { id: 'never', action: 'deny', ports: 22 },
    ]);
    expect(p.decide(flow({ port: 22 }))).toMatchObject({ action: 'deny', verdict: 'denied', ruleId: 'deny-22', tier: 'workload' });
    expect(p.decide(flow({ port: 80 }))).toMatchObject({ action: 'allow', verdict: 'allowed', ruleId: 'allow-all' });
    const empty = compile([], { defaultAction: 'deny' });
    expect(empty.decide(flow())).toMatchObject({ action: 'deny', verdict: 'denied', ruleId: 'default', tier: 'default', log: false });
    expect(compile([], { defaultAction: 'allow' }).decide(flow()).verdict).toBe('allowed');
  });

  test('cluster rules come before workload rules; pass hands over to the workload tier', () => {
    const p = compile(
      [
        { id: 'w-allow-ssh', action: 'allow', ports: 22 },
        { id: 'w-deny-web', action: 'deny', ports: 80 },
      ],
      {
        cluster: [
          { id: 'c-deny-ssh', action: 'deny', ports: 22 },
          { id: 'c-pass-web', action: 'pass', ports: 80 },
          { id: 'c-allow-web', action: 'allow', ports: 80 },
          { id: 'c-allow-dns', action: 'allow', ports: 53 },
        ],
        defaultAction: 'allow',
      },
    );
    expect(p.decide(flow({ port: 22 }))).toMatchObject({ ruleId: 'c-deny-ssh', tier: 'cluster', verdict: 'denied' });
    // pass skips the rest of the cluster tier (c-allow-web) and the workload tier decides
    expect(p.decide(flow({ port: 80 }))).toMatchObject({ ruleId: 'w-deny-web', tier: 'workload' });
    expect(ruleIdOf(p, { port: 53 })).toBe('c-allow-dns');
    expect(ruleIdOf(p, { port: 443 })).toBe('default');
    expect(p.ruleCount).toBe(6);
  });

  test('a pass with no matching workload rule falls to the default action', () => {
    const p = compile([], { cluster: [{ id: 'p', action: 'pass' }, { id: 'deny', action: 'deny' }], defaultAction: 'allow' });
    expect(p.decide(flow())).toMatchObject({ ruleId: 'default', verdict: 'allowed' });
  });

  test('ids must be unique across tiers', () => {
    const result = compilePolicy({ clusterRules: [{ id: 'x', action: 'deny' }], workloadRules: [{ id: 'a', action: 'allow' }, { id: 'x', action: 'allow' }], defaultAction: 'deny', mode: 'protect', workloadSource: 'annotation' });
    expect('issues' in result && result.issues).toEqual([expect.objectContaining({ source: 'annotation', index: 1, field: 'id', message: expect.stringContaining('unique across both tiers') })]);
  });

  test('invalid rules are refused with their issues', () => {
    const result = compilePolicy({ clusterRules: [{ id: 'c', action: 'pass', ports: 0 }], workloadRules: [{ id: 'w', action: 'pass' }], defaultAction: 'deny', mode: 'protect' });
    expect('issues' in result && result.issues.map((i) => `${i.source}:${i.index}:${i.field}`)).toEqual(['cluster rules:0:ports', 'workload rules:0:action']);
  });

  test('log flag is carried into the decision', () => {
    const p = compile([{ id: 'a', action: 'deny', log: true }]);
    expect(p.decide(flow()).log).toBe(true);
  });
});

describe('matchers', () => {
  test('direction: peer is src for ingress and dst for egress and intra', () => {
    const p = compile([
      { id: 'in', action: 'allow', direction: 'ingress', peer: { cidr: '192.168.0.0/16' } },
      { id: 'out', action: 'allow', direction: ['egress', 'intra'], peer: { cidr: '10.2.0.0/16' } },
    ]);
    expect(ruleIdOf(p, { direction: 'ingress', peerIp: '192.168.3.4' })).toBe('in');
    expect(ruleIdOf(p, { direction: 'ingress', peerIp: '10.2.0.5' })).toBe('default');
    expect(ruleIdOf(p, { direction: 'egress', peerIp: '10.2.0.5' })).toBe('out');
    expect(ruleIdOf(p, { direction: 'intra', peerIp: '10.2.0.5' })).toBe('out');
    expect(ruleIdOf(p, { direction: 'egress', peerIp: '192.168.3.4' })).toBe('default');
  });

  test('ports: numbers and ranges on the destination port, for ingress too', () => {
    const p = compile([{ id: 'p', action: 'allow', ports: [443, '8000-8100', '9000'] }]);
    const cases: Array<[number, string]> = [[443, 'p'], [444, 'default'], [7999, 'default'], [8000, 'p'], [8050, 'p'], [8100, 'p'], [8101, 'default'], [9000, 'p']];
    for (const [port, id] of cases) {
      expect(ruleIdOf(p, { port }), `port ${port}`).toBe(id);
      expect(ruleIdOf(p, { port, direction: 'ingress' }), `ingress port ${port}`).toBe(id);
    }
  });

  test.each([
    ['10.0.0.0/8', '10.255.1.2', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['10.1.2.3', '10.1.2.3', true],
    ['10.1.2.3', '10.1.2.4', false],
    ['0.0.0.0/0', '203.0.113.9', true],
    ['0.0.0.0/0', '2001:db8::1', false],
    ['172.16.0.0/12', '172.31.255.255', true],
    ['172.16.0.0/12', '172.32.0.0', false],
    ['10.0.0.0/8', '::ffff:10.9.8.7', true], // dual-stack sockets report IPv4 peers like this
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['fe80::/10', 'fe80::1%eth0', true],
    ['::/0', '::1', true],
    ['::/0', '127.0.0.1', false],
    ['2001:db8:0:1::/64', '2001:db8:0:1:ffff:ffff:ffff:ffff', true],
    ['2001:db8:0:1::/64', '2001:db8:0:2::', false],
    ['2001:db8::1:0:0:1/128', '2001:DB8:0:0:1::1', true],
    ['::ffff:10.0.0.0/104', '10.3.3.3', true],
    ['192.168.0.0/16', 'not-an-ip', false],
  ])('cidr %s vs %s → %s', (cidr, ip, matches) => {
    const p = compile([{ id: 'c', action: 'allow', peer: { cidr } }]);
    expect(ruleIdOf(p, { peerIp: ip })).toBe(matches ? 'c' : 'default');
  });

  test('identity peers: namespace, all labels, service account; unknown workloads never match', () => {
    const p = compile([
      { id: 'web', action: 'allow', peer: { namespace: ['shop', 'shop-canary'], labels: { app: 'web', tier: 'front' }, serviceAccount: 'web' } },
      { id: 'any-billing', action: 'allow', peer: { namespace: 'billing' } },
      { id: 'either', action: 'allow', peer: [{ labels: { role: 'admin' } }, { cidr: '10.9.0.0/16' }] },
    ]);
    const web: Workload = { namespace: 'shop', labels: { app: 'web', tier: 'front', extra: 'x' }, serviceAccount: 'web' };
    expect(ruleIdOf(p, { peer: web })).toBe('web');
    expect(ruleIdOf(p, { peer: { ...web, namespace: 'shop-canary' } })).toBe('web');
    expect(ruleIdOf(p, { peer: { ...web, labels: { app: 'web' } } })).toBe('default');
    expect(ruleIdOf(p, { peer: { ...web, serviceAccount: 'default' } })).toBe('default');
    expect(ruleIdOf(p, { peer: { ...web, namespace: 'other' } })).toBe('default');
    expect(ruleIdOf(p, { peer: { namespace: 'billing' } })).toBe('any-billing');
    expect(ruleIdOf(p, {})).toBe('default');
    expect(ruleIdOf(p, { peer: { labels: { role: 'admin' } } })).toBe('either');
    expect(ruleIdOf(p, { peerIp: '10.9.1.1' })).toBe('either');
  });

  test('cidr and identity in one peer must both match', () => {
    const p = compile([{ id: 'both', action: 'allow', peer: { cidr: '10.2.0.0/16', namespace: 'shop' } }]);
    expect(ruleIdOf(p, { peer: { namespace: 'shop' } })).toBe('both');
    expect(ruleIdOf(p, { peer: { namespace: 'shop' }, peerIp: '10.3.0.1' })).toBe('default');
    expect(ruleIdOf(p, {})).toBe('default');
  });

  test('protocol: tcp matches everything; http covers http2 and grpc; grpc matches grpc calls only', () => {
    const p = compile([
      { id: 'grpc', action: 'allow', protocol: 'grpc' },
      { id: 'h2', action: 'allow', protocol: 'http2' },
      { id: 'http', action: 'allow', protocol: 'http' },
      { id: 'dns', action: 'allow', protocol: 'dns' },
      { id: 'tcp', action: 'deny', protocol: 'tcp' },
    ]);
    expect(ruleIdOf(p, { protocol: 'grpc' })).toBe('grpc');
    expect(ruleIdOf(p, { protocol: 'http2', l7: { grpc: { service: 'a.B', method: 'C' } } })).toBe('grpc');
    expect(ruleIdOf(p, { protocol: 'http2' })).toBe('h2');
    expect(ruleIdOf(p, { protocol: 'http' })).toBe('http');
    expect(ruleIdOf(p, { protocol: 'dns' })).toBe('dns');
    expect(ruleIdOf(p, { protocol: 'ssh' })).toBe('tcp');
    expect(ruleIdOf(p, {})).toBe('tcp');
  });

  test('an L7 block on a flow of another protocol, or without L7 facts, does not match', () => {
    const p = compile([
      { id: 'get', action: 'allow', http: { methods: ['GET'] } },
      { id: 'a-records', action: 'allow', dns: { types: ['A'] } },
    ]);
    expect(ruleIdOf(p, { protocol: 'http', l7: { http: { method: 'GET', path: '/' } } })).toBe('get');
    expect(ruleIdOf(p, { protocol: 'dns', l7: { http: { method: 'GET', path: '/' } } })).toBe('default');
    expect(ruleIdOf(p, { protocol: 'http' })).toBe('default');
    expect(ruleIdOf(p, { protocol: 'http', l7: { dns: { name: 'a.b', type: 'A' } } })).toBe('default');
    expect(ruleIdOf(p, { protocol: 'dns', l7: { dns: { name: 'a.b', type: 'a' } } })).toBe('a-records');
  });

  test('http: methods, paths, hosts, headers all must match', () => {
    const p = compile([
      {
        id: 'api',
        action: 'allow',
        http: { methods: ['get', 'HEAD'], paths: ['/api/v1/**'], hosts: ['*.shop.svc.cluster.local'], headers: { 'X-Env': 'prod*' } },
      },
    ]);
    const ok: { method: string; path: string; host: string; headers: Record<string, string> } = { method: 'GET', path: '/api/v1/items?limit=5', host: 'cart.shop.svc.cluster.local:8080', headers: { 'x-env': 'production' } };
    const check = (http: Partial<typeof ok>): string => ruleIdOf(p, { protocol: 'http', l7: { http: { ...ok, ...http } } });
    expect(check({})).toBe('api');
    expect(check({ method: 'head' })).toBe('api');
    expect(check({ method: 'POST' })).toBe('default');
    expect(check({ path: '/api/v2/items' })).toBe('default');
    expect(check({ host: 'cart.other.svc.cluster.local' })).toBe('default');
    expect(check({ host: 'CART.SHOP.SVC.CLUSTER.LOCAL.' })).toBe('api');
    expect(check({ headers: { 'X-ENV': 'prod' } })).toBe('api');
    expect(check({ headers: { 'x-env': 'staging' } })).toBe('default');
    expect(check({ headers: {} })).toBe('default');
  });

  test('grpc, tls and dns blocks', () => {
    const p = compile([
      { id: 'grpc', action: 'deny', grpc: { services: ['shop.v1.*'], methods: ['Delete*'] } },
      { id: 'tls', action: 'allow', tls: { sni: ['**.example.com'], alpn: ['h2'] } },
      { id: 'dns', action: 'allow', dns: { names: ['*.svc.cluster.local'], types: ['A', 'AAAA'] } },
    ], { defaultAction: 'allow' });
    expect(ruleIdOf(p, { protocol: 'grpc', l7: { grpc: { service: 'shop.v1.Cart', method: 'DeleteItem' } } })).toBe('grpc');
    expect(ruleIdOf(p, { protocol: 'grpc', l7: { grpc: { service: 'shop.v1.Cart', method: 'GetItem' } } })).toBe('default');
    expect(ruleIdOf(p, { protocol: 'grpc', l7: { grpc: { service: 'shop.v1.admin.Cart', method: 'DeleteItem' } } })).toBe('default');
    expect(ruleIdOf(p, { protocol: 'tls', l7: { tls: { sni: 'api.eu.Example.com', alpn: ['http/1.1', 'h2'] } } })).toBe('tls');
    expect(ruleIdOf(p, { protocol: 'tls', l7: { tls: { sni: 'example.com', alpn: ['h2'] } } })).toBe('tls');
    expect(ruleIdOf(p, { protocol: 'tls', l7: { tls: { alpn: ['h2'] } } })).toBe('default');
    expect(ruleIdOf(p, { protocol: 'tls', l7: { tls: { sni: 'api.example.com', alpn: ['http/1.1'] } } })).toBe('default');
    expect(ruleIdOf(p, { protocol: 'dns', l7: { dns: { name: 'cart.svc.cluster.local.', type: 'AAAA' } } })).toBe('dns');
    expect(ruleIdOf(p, { protocol: 'dns', l7: { dns: { name: 'a.cart.svc.cluster.local', type: 'A' } } })).toBe('default');
    expect(ruleIdOf(p, { protocol: 'dns', l7: { dns: { name: 'cart.svc.cluster.local', type: 'TXT' } } })).toBe('default');
  });
});

describe('CONNECT by target (http.authorities)', () => {
  const p = compile([
    { id: 'no-ssh-hosts', action: 'deny', http: { methods: ['CONNECT'], authorities: ['*.ssh.example.com:*'] } },
    { id: 'https-out', action: 'allow', http: { methods: ['CONNECT'], authorities: ['*:443', '[2001:db8::1]:8443'] } },
  ]);
  const connect = (target: string, method = 'CONNECT') => ruleIdOf(p, { protocol: 'http', l7: { http: { method, path: target } } });
  test('matches the target host glob and port', () => {
    expect(connect('api.example.com:443')).toBe('https-out');
    expect(connect('API.Example.COM.:443')).toBe('https-out');
    expect(connect('10.0.0.7:443')).toBe('https-out');
    expect(connect('[2001:db8::1]:8443')).toBe('https-out');
    expect(connect('api.example.com:22')).toBe('default');
    expect(connect('box.ssh.example.com:443')).toBe('no-ssh-hosts');
  });
  test('only CONNECT has an authority; a target that is not host:port matches deny rules only', () => {
    expect(connect('api.example.com:443', 'GET')).toBe('default');
    // No port: not host:port, so the first deny rule naming authorities takes it.
    expect(connect('api.example.com')).toBe('no-ssh-hosts');
    const denyAll = compile([{ id: 'deny-odd', action: 'deny', http: { authorities: ['*:*'] } }], { defaultAction: 'allow' });
    expect(ruleIdOf(denyAll, { protocol: 'http', l7: { http: { method: 'CONNECT', path: 'no-port' } } })).toBe('deny-odd');
  });
  test('the schema refuses what is not host:port, saying so', () => {
    const result = compilePolicy({ clusterRules: [], workloadRules: [{ id: 'x', action: 'allow', http: { authorities: ['example.com'] } }], defaultAction: 'deny', mode: 'protect' });
    expect('issues' in result && JSON.stringify(result.issues)).toContain('is not host:port');
  });
});

describe('globs', () => {
  const pathCases: Array<[string, string, boolean]> = [
    ['/api/*', '/api/items', true],
    ['/api/*', '/api/items/1', false],
    ['/api/*', '/api/', true],
    ['/api/*/items', '/api/v1/items', true],
    ['/api/*/items', '/api/v1/x/items', false],
    ['/api/**', '/api', true],
    ['/api/**', '/api/', true],
    ['/api/**', '/api/a/b/c', true],
    ['/api/**', '/apix', false],
    ['/api/**/edit', '/api/a/b/edit', true],
    ['/api/**/edit', '/api/edit', false],
    ['/files/*.txt', '/files/a.txt', true],
    ['/files/*.txt', '/files/a.txt.gz', false],
    ['/exact', '/exact', true],
    ['/exact', '/exact/', false],
    ['/exact', '/Exact', false],
    ['/a+b(c)', '/a+b(c)', true],
    ['/admin', '/%61dmin', true], // percent-encoded unreserved characters are decoded
    ['/admin', '/public/../admin', true], // dot segments are resolved
    ['/admin', '//admin', true], // repeated slashes are merged
    ['/admin', '/./admin?x=1#f', true],
    ['/a%2Fb', '/a%2fb', true], // reserved encodings are kept (normalised to upper case)
    ['/a/*', '/a%2Fb', false], // an encoded slash is not a segment separator
    ['/**', '/anything/at/all', true],
    ['*', '*', true],
  ];
  test.each(pathCases)('path %s vs %s → %s', (glob, path, matches) => {
    const p = compile([{ id: 'g', action: 'allow', http: { paths: [glob] } }]);
    expect(ruleIdOf(p, { protocol: 'http', l7: { http: { method: 'GET', path } } })).toBe(matches ? 'g' : 'default');
  });

  const nameCases: Array<[string, string, boolean]> = [
    ['*.example.com', 'api.example.com', true],
    ['*.example.com', 'a.b.example.com', false],
    ['*.example.com', 'example.com', false],
    ['**.example.com', 'example.com', true],
    ['**.example.com', 'a.b.example.com', true],
    ['**.example.com', 'badexample.com', false],
    ['api-*.example.com', 'api-eu.example.com', true],
    ['api-*.example.com', 'web.example.com', false],
    ['Example.COM', 'example.com.', true],
    ['example.com.', 'EXAMPLE.com', true],
    ['**', 'anything.at.all', true],
    ['*', 'localhost', true],
    ['*', 'a.b', false],
  ];
  test.each(nameCases)('dns name %s vs %s → %s', (glob, name, matches) => {
    const p = compile([{ id: 'g', action: 'allow', dns: { names: [glob] } }]);
    expect(ruleIdOf(p, { protocol: 'dns', l7: { dns: { name, type: 'A' } } })).toBe(matches ? 'g' : 'default');
  });

  const serviceCases: Array<[string, string, boolean]> = [
    ['shop.v1.*', 'shop.v1.Cart', true],
    ['shop.v1.*', 'shop.v1.sub.Cart', false],
    ['**.Cart', 'shop.v1.Cart', true],
    ['shop.v1.Cart', 'shop.v1.cart', false], // protobuf names are case-sensitive
  ];
  test.each(serviceCases)('grpc service %s vs %s → %s', (glob, service, matches) => {
    const p = compile([{ id: 'g', action: 'allow', grpc: { services: [glob] } }]);
    expect(ruleIdOf(p, { protocol: 'grpc', l7: { grpc: { service, method: 'M' } } })).toBe(matches ? 'g' : 'default');
  });
});

describe('decideConnection and decideProtocol', () => {
  const p = compile(
    [
      { id: 'ssh-deny', action: 'deny', ports: 22 },
      { id: 'web', action: 'allow', ports: 80, http: { paths: ['/public/**'] } },
      { id: 'db', action: 'allow', ports: 5432, protocol: 'postgres' },
      { id: 'tcp-ok', action: 'allow', ports: 6379, protocol: 'tcp' },
    ],
    { cluster: [{ id: 'c-pass', action: 'pass', direction: 'egress', ports: [80, 22, 5432] }, { id: 'c-l7', action: 'deny', direction: 'ingress', http: { methods: ['DELETE'] } }] },
  );
  const conn = (port: number, direction: Direction = 'egress') => {
    const { protocol: _p, l7: _l, ...l4 } = flow({ port, direction });
    return l4;
  };

  test('L3/L4 facts decide when the first L4 match has no protocol or L7 matchers', () => {
    expect(p.decideConnection(conn(22))).toMatchObject({ ruleId: 'ssh-deny', verdict: 'denied' });
    expect(p.decideConnection(conn(6379))).toMatchObject({ ruleId: 'tcp-ok', verdict: 'allowed' });
    expect(p.decideConnection(conn(9999))).toMatchObject({ ruleId: 'default' });
  });

  test("'needs-l7' when the first L4 match has protocol or L7 matchers", () => {
    expect(p.decideConnection(conn(80))).toBe('needs-l7');
    expect(p.decideConnection(conn(5432))).toBe('needs-l7');
    // a cluster rule with an L7 block in front of everything
    expect(p.decideConnection(conn(22, 'ingress'))).toBe('needs-l7');
  });

  test('decideProtocol decides protocol rules and asks for L7 only for L7 blocks', () => {
    expect(p.decideProtocol({ ...conn(5432), protocol: 'postgres' })).toMatchObject({ ruleId: 'db' });
    expect(p.decideProtocol({ ...conn(5432), protocol: 'ssh' })).toMatchObject({ ruleId: 'default', verdict: 'denied' });
    expect(p.decideProtocol({ ...conn(80), protocol: 'http' })).toBe('needs-l7');
    expect(p.decideProtocol({ ...conn(80), protocol: 'ssh' })).toMatchObject({ ruleId: 'default' }); // web needs http
    expect(p.decide({ ...conn(80), protocol: 'http', l7: { http: { method: 'GET', path: '/public/x' } } }).ruleId).toBe('web');
    expect(p.decide({ ...conn(80), protocol: 'http', l7: { http: { method: 'GET', path: '/private' } } }).ruleId).toBe('default');
  });
});

describe('modes', () => {
  const rules = [{ id: 'deny-22', action: 'deny', ports: 22 }, { id: 'allow-80', action: 'allow', ports: 80 }];
  test.each(['monitor', 'learn'] as const)('%s: action is always allow, verdict would-deny where protect denies', (mode) => {
    const p = compile(rules, { mode });
    expect(p.mode).toBe(mode);
    expect(p.decide(flow({ port: 22 }))).toMatchObject({ action: 'allow', verdict: 'would-deny', ruleId: 'deny-22' });
    expect(p.decide(flow({ port: 80 }))).toMatchObject({ action: 'allow', verdict: 'allowed', ruleId: 'allow-80' });
    expect(p.decide(flow({ port: 81 }))).toMatchObject({ action: 'allow', verdict: 'would-deny', ruleId: 'default' });
    expect(p.decideConnection(flow({ port: 22 }))).toMatchObject({ action: 'allow', verdict: 'would-deny' });
  });
  test('protect enforces', () => {
    expect(compile(rules).decide(flow({ port: 81 }))).toMatchObject({ action: 'deny', verdict: 'denied' });
  });
});

describe('policy hash', () => {
  const rules = [{ id: 'a', action: 'allow', ports: [80, 443] }];
  test('is 12 hex chars, stable for the same content regardless of key order and spelling', () => {
    const h1 = compile(rules).hash;
    expect(h1).toMatch(/^[0-9a-f]{12}$/);
    expect(compile([{ ports: [443, '80'], action: 'allow', id: 'a' }]).hash).toBe(h1);
    expect(compile(rules).decide(flow()).policy).toBe(h1);
  });
  test('changes with the rules, the default action, the mode and the tier', () => {
    const h = compile(rules).hash;
    const others = [
      compile([{ id: 'a', action: 'allow', ports: [80, 444] }]).hash,
      compile([{ id: 'b', action: 'allow', ports: [80, 443] }]).hash,
      compile([{ id: 'a', action: 'deny', ports: [80, 443] }]).hash,
      compile(rules, { defaultAction: 'allow' }).hash,
      compile(rules, { mode: 'monitor' }).hash,
      compile([], { cluster: rules }).hash,
      compile([...rules, { id: 'z', action: 'deny' }]).hash,
    ];
    for (const other of others) expect(other).not.toBe(h);
    expect(new Set(others).size).toBe(others.length);
  });
});

describe('index consistency', () => {
  test('many rules over many ports give the same answer as a plain first-match scan', () => {
    const rules = Array.from({ length: 300 }, (_, i) => ({
      id: `r${i}`,
      action: i % 3 === 0 ? 'deny' : 'allow',
      direction: (['ingress', 'egress', 'intra'] as const)[i % 3],
      ports: i % 7 === 0 ? [`${1000 + i}-${1100 + i}`] : [1000 + i],
      ...(i % 5 === 0 && { peer: { cidr: `10.${i % 256}.0.0/16` } }),
    }));
    const p = compile(rules);
    for (let port = 990; port < 1500; port += 3) {
      for (const direction of ['ingress', 'egress', 'intra'] as const) {
        for (const ip of ['10.0.0.1', '10.5.1.1', '10.35.0.1']) {
          const expected = rules.find((r) => {
            if (r.direction !== direction) return false;
            const [from, to] = String(r.ports[0]).split('-').map(Number);
            if (port < from! || port > (to ?? from)!) return false;
            if (r.peer) {
              const second = Number(r.peer.cidr.split('.')[1]);
              if (Number(ip.split('.')[1]) !== second) return false;
            }
            return true;
          });
          expect(ruleIdOf(p, { port, direction, peerIp: ip }), `${direction} ${ip}:${port}`).toBe(expected?.id ?? 'default');
        }
      }
    }
  });

  test('long lists on one port, narrowed by peer address, keep first-match order', () => {
    // CIDR-only rules interleaved with identity rules and a CIDR+identity rule, all on port 80
    const rules: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 200; i++) {
      if (i % 10 === 3) rules.push({ id: `ns${i}`, action: 'deny', ports: 80, peer: { namespace: `ns-${i}` } });
      else if (i % 10 === 7) rules.push({ id: `mix${i}`, action: 'deny', ports: 80, peer: { cidr: `10.0.${i}.0/24`, namespace: 'mix' } });
      else rules.push({ id: `c${i}`, action: i % 2 ? 'allow' : 'deny', ports: 80, peer: [{ cidr: `10.0.${i}.0/24` }, { cidr: `fd00:0:0:${i.toString(16)}::/64` }] });
    }
    rules.push({ id: 'wide', action: 'allow', ports: 80, peer: { cidr: '10.0.0.0/16' } });
    const p = compile(rules);
    const cases: Array<[FlowOptions, string]> = [
      [{ peerIp: '10.0.5.1' }, 'c5'],
      [{ peerIp: '::ffff:10.0.5.1' }, 'c5'],
      [{ peerIp: 'fd00:0:0:5::1' }, 'c5'],
      [{ peerIp: 'fd00::5:0:0:1' }, 'c0'], // fd00:0:0:0:5:0:0:1 lies in fd00:0:0:0::/64
      [{ peerIp: '10.0.13.1', peer: { namespace: 'ns-13' } }, 'ns13'],
      [{ peerIp: '10.0.13.1', peer: { namespace: 'ns-3' } }, 'ns3'],
      [{ peerIp: '10.0.17.1', peer: { namespace: 'mix' } }, 'mix17'],
      [{ peerIp: '10.0.17.1' }, 'wide'],
      [{ peerIp: '10.0.250.1' }, 'wide'],
      [{ peerIp: '10.1.0.1' }, 'default'],
      [{ peerIp: '10.0.5.1', port: 81 }, 'default'],
    ];
    for (let round = 0; round < 2; round++) {
      // twice: the second round answers from the caches
      for (const [options, id] of cases) expect(ruleIdOf(p, { port: 80, ...options }), JSON.stringify(options)).toBe(id);
    }
  });
});
