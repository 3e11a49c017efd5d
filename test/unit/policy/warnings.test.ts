// `policy check` warnings (issue 16 item 5): likely mistakes in valid rules, marked WARNING on
// stderr, exit 0; none on a clean file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { readRuleSource } from '../../../src/policy/index.js';
import { covers, ruleWarnings } from '../../../src/policy/warnings.js';
import { sidewallPolicy } from './run-policy-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'sidewall-warn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function warningsOf(text: string): string[] {
  const { rules, issues } = readRuleSource(text, 'r.yaml');
  expect(issues).toEqual([]);
  return ruleWarnings(rules, 'r.yaml').map((w) => `${w.index}:${w.field}:${w.message}`);
}

describe('policy check warnings', () => {
  test('/admin* without /admin/** is a WARNING, exit 0; with it, none', async () => {
    const trap = file('trap.yaml', '- id: no-admin\n  action: deny\n  http: { paths: ["/admin*"] }\n- id: rest\n  action: allow\n');
    const result = await sidewallPolicy('check', trap);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ok: 2 rules, policy [0-9a-f]{12} \(1 warning\)\n$/);
    expect(result.stderr).toBe(`WARNING: ${trap}: rules[0].http.paths: '/admin*' matches '/admin' and '/admin-x' but not '/admin/x': '*' stays within one path segment; for the subtree write '/admin/**' (as well)\n`);
    expect(warningsOf('- id: a\n  action: deny\n  http: { paths: ["/admin*", "/admin/**"] }\n')).toEqual([]);
    expect(warningsOf('- id: a\n  action: deny\n  http: { paths: ["/admin/*", "/static/**", "/x"] }\n')).toEqual([]);
  });

  test('an unknown-looking method, with a suggestion', () => {
    expect(warningsOf('- id: a\n  action: allow\n  http: { methods: [GTE, get, PROPFIND] }\n')).toEqual([
      "0:http.methods:'GTE' is not a registered HTTP method, so no request will match it (did you mean 'GET'?)",
    ]);
    expect(warningsOf('- id: a\n  action: allow\n  http: { methods: [FROB] }\n')[0]).toMatch(/'FROB' is not a registered HTTP method, so no request will match it$/);
  });

  test('an empty rules file', async () => {
    const empty = file('empty.yaml', '# nothing yet\n');
    const result = await sidewallPolicy('check', empty);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(`WARNING: ${empty}: no rules: every flow gets the defaultAction (deny)\n`);
  });

  test('a rule an earlier one shadows entirely', () => {
    expect(warningsOf(`
- { id: all-egress, action: allow, direction: egress }
- { id: deny-ssh, action: deny, direction: egress, ports: 22 }
`)).toEqual([`1::is never reached: rules[0] ('all-egress') before it matches every flow it matches and decides allow; move this deny rule above it or narrow rules[0]`]);
    expect(warningsOf(`
- { id: web, action: allow, ports: ["80-90"], peer: { namespace: shop } }
- { id: web-81, action: allow, ports: 81, peer: { namespace: shop }, http: { paths: ["/a"] } }
`)[0]).toMatch(/^1::is never reached: rules\[0\] \('web'\).*same action, allow/);
    // Narrower earlier rules do not shadow.
    expect(warningsOf(`
- { id: ssh, action: deny, ports: 22 }
- { id: egress, action: allow, direction: egress }
- { id: api, action: allow, protocol: http, http: { paths: ["/api/**"] } }
- { id: http, action: deny, protocol: http }
- { id: udp, action: allow, protocol: udp }
`)).toEqual([]);
  });

  test('an allow rule without protocol does not shadow a udp rule (non-TCP flows skip it)', () => {
    const { rules } = readRuleSource('- { id: any, action: allow }\n- { id: u, action: deny, protocol: udp }\n', 'r');
    expect(covers(rules[0]!, rules[1]!)).toBe(false);
    const deny = readRuleSource('- { id: any, action: deny }\n- { id: u, action: allow, protocol: udp }\n', 'r').rules;
    expect(covers(deny[0]!, deny[1]!)).toBe(true);
  });
});
