import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { sidewallPolicy } from './run-policy-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'sidewall-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}


const rules = file('rules.yaml', `
- id: deny-ssh
  action: deny
  ports: 22
- id: api
  action: allow
  direction: egress
  ports: 80
  http: { methods: [GET], paths: ["/api/**"] }
`);

const httpFlow = (path: string): string =>
  JSON.stringify({ direction: 'egress', src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.7', port: 80 }, protocol: 'http', l7: { http: { method: 'GET', path } } });

describe('sidewall policy check', () => {
  test('valid file: ok with rule count and hash, exit 0', async () => {
    const result = await sidewallPolicy('check', rules);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ok: 2 rules, policy [0-9a-f]{12}\n$/);
  });

  test('invalid file: every error as FILE: rules[INDEX].FIELD: message, exit 1', async () => {
    const bad = file('bad.yaml', '- { id: a, action: allow, peer: { cidr: 10.0.0.0/33 } }\n- { id: a, action: pass, ports: ["9-1"] }\n');
    const result = await sidewallPolicy('check', bad);
    expect(result.code).toBe(1);
    expect(result.stdout.trim().split('\n')).toEqual([
      `${bad}: rules[0].peer.cidr: '10.0.0.0/33' is not a CIDR (prefix length must be 0–32)`,
      `${bad}: rules[1].action: 'pass' is only allowed in cluster rules (it hands over to the workload tier); use allow or deny`,
      `${bad}: rules[1].ports[0]: '9-1' is an empty range (9 > 1); write "1-9"`,
      `${bad}: rules[1].id: duplicate id 'a' (also used by rules[0]); ids must be unique`,
    ]);
  });

  test('--tier cluster accepts pass; --cluster checks both files and ids across tiers', async () => {
    const cluster = file('cluster.yaml', '- { id: c, action: pass }\n- { id: deny-ssh, action: deny }\n');
    expect((await sidewallPolicy('check', cluster, '--tier', 'cluster')).code).toBe(0);
    const both = await sidewallPolicy('check', rules, '--cluster', cluster);
    expect(both.code).toBe(1);
    expect(both.stdout).toContain(`${rules}: rules[0].id: id 'deny-ssh' is already used by cluster rule 1`);
  });

  test('a sidecar config is a rules file; its mode and defaultAction go into the hash', async () => {
    const a = file('a.yaml', 'mode: protect\ndefaultAction: deny\nrules: [{ id: x, action: allow }]\n');
    const b = file('b.yaml', 'mode: monitor\ndefaultAction: deny\nrules: [{ id: x, action: allow }]\n');
    const ra = await sidewallPolicy('check', a);
    const rb = await sidewallPolicy('check', b);
    expect(ra.stdout).toMatch(/^ok: 1 rules, policy/);
    expect(ra.stdout).not.toBe(rb.stdout);
  });

  test('the other settings of a sidecar config are checked too', async () => {
    const config = file('config.yaml', 'mode: enforce\nproxy: { idleTimeoutMs: 0 }\nrules: [{ id: x, action: allow, ports: 0 }]\n');
    const result = await sidewallPolicy('check', config);
    expect(result.code).toBe(1);
    expect(result.stdout.trim().split('\n')).toEqual([
      `${config}: rules[0].ports: 0 is not a port (1–65535)`,
      `${config}: mode: must be one of protect, monitor, learn, not 'enforce'`,
      `${config}: proxy.idleTimeoutMs: must be a positive whole number of milliseconds up to 2147483647, not 0`,
    ]);
  });

  test('usage errors exit 2', async () => {
    expect((await sidewallPolicy('check')).code).toBe(2);
    expect((await sidewallPolicy('frobnicate', rules)).code).toBe(2);
    const missing = await sidewallPolicy('check', join(dir, 'nope.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no such file');
    const help = await sidewallPolicy('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('sidewall policy test FILE --flow JSON');
  });
});

describe('sidewall policy test', () => {
  test('prints verdict, ruleId and policy of the deciding rule', async () => {
    const allowed = await sidewallPolicy('test', rules, '--flow', httpFlow('/api/items'), '--mode', 'protect');
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toMatch(/^verdict: allowed\nruleId: api\npolicy: [0-9a-f]{12}\n/);
    expect(allowed.stdout).toContain('at connect: needs L7');
    const denied = await sidewallPolicy('test', rules, '--flow', httpFlow('/admin'), '--mode', 'protect');
    expect(denied.stdout).toMatch(/^verdict: denied\nruleId: default\n/);
  });

  test('monitor (the default mode) reports would-deny; --default-action and --json', async () => {
    const ssh = JSON.stringify({ direction: 'egress', dst: { ip: '10.0.0.7', port: 22 } });
    const monitor = await sidewallPolicy('test', rules, '--flow', ssh, '--json');
    expect(JSON.parse(monitor.stdout)).toMatchObject({ verdict: 'would-deny', action: 'allow', ruleId: 'deny-ssh', mode: 'monitor', atConnect: 'deny-ssh' });
    const open = await sidewallPolicy('test', rules, '--flow', JSON.stringify({ direction: 'ingress', dst: { ip: '10.0.0.1', port: 9 } }), '--default-action', 'allow', '--json');
    expect(JSON.parse(open.stdout)).toMatchObject({ verdict: 'allowed', ruleId: 'default' });
  });

  test('cluster rules apply first', async () => {
    const cluster = file('cluster2.yaml', '- { id: c-block-api, action: deny, ports: 80, protocol: http }\n');
    const result = await sidewallPolicy('test', rules, '--cluster', cluster, '--mode', 'protect', '--flow', httpFlow('/api/items'));
    expect(result.stdout).toMatch(/^verdict: denied\nruleId: c-block-api\n/);
    expect(result.stdout).toContain('tier: cluster');
  });

  test('bad flows and flags exit 2 with a reason', async () => {
    for (const [args, reason] of [
      [['test', rules], 'needs --flow'],
      [['test', rules, '--flow', '{'], 'not valid JSON'],
      [['test', rules, '--flow', '{"direction":"up"}'], 'direction must be one of'],
      [['test', rules, '--flow', '{"direction":"egress","dst":{"port":"80"}}'], 'dst.port must be a port number'],
      [['test', rules, '--flow', httpFlow('/'), '--mode', 'enforce'], '--mode must be one of'],
      [['check', rules, '--bogus'], "Unknown option '--bogus'"],
    ] as Array<[string[], string]>) {
      const result = await sidewallPolicy(...args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toContain(reason);
    }
  });
});
