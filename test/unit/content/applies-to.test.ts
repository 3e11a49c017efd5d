// Cluster rules with appliesTo (compiled only into the sidecars of the pods they select), rules'
// dlp matchers, their validation, `policy test --pod`, and the learner never learning what a
// rule denies.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compilePolicy, type CompiledPolicy, type FlowFacts } from '../../../src/policy/index.js';
import { LearnModel } from '../../../src/learn/model.js';
import { sidewallPolicy } from '../policy/run-policy-cli.js';

const CLUSTER = [
  { id: 'pci-no-pan-egress', action: 'deny', direction: 'egress', appliesTo: { labels: { pci: 'true' } }, dlp: ['pci-pan'] },
  { id: 'pci-only-cardholder', action: 'deny', direction: 'egress', appliesTo: { labels: { pci: 'true' }, namespace: 'shop' }, peer: { cidr: '0.0.0.0/0' }, ports: [25] },
  { id: 'open-for-team', action: 'allow', appliesTo: { namespace: 'team' }, ports: [8080] },
];

function compile(pod: Parameters<typeof compilePolicy>[0]['pod']): CompiledPolicy {
  const r = compilePolicy({ clusterRules: CLUSTER, workloadRules: [], defaultAction: 'allow', mode: 'protect', pod });
  if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

const http = (dlp?: string[]): FlowFacts => ({ direction: 'egress', src: { ip: '10.0.0.1', port: 1 }, dst: { ip: '10.9.9.9', port: 80 }, protocol: 'http', l7: { http: { method: 'POST', path: '/pay' }, ...(dlp ? { dlp: { sensors: dlp } } : {}) } });

describe('appliesTo', () => {
  it('a rule is in force only in the pods it selects; the policy hash says which', () => {
    const labelled = compile({ namespace: 'shop', labels: { pci: 'true', app: 'cart' } });
    const other = compile({ namespace: 'shop', labels: { app: 'cart' } });
    expect(labelled.decide(http(['pci-pan'])).ruleId).toBe('pci-no-pan-egress');
    expect(other.decide(http(['pci-pan'])).ruleId).toBe('default');
    expect(labelled.hash).not.toBe(other.hash);
    expect(labelled.dlpSensors).toEqual(['pci-pan']);
    expect(other.dlpSensors).toEqual([]);
    // Without a hit, the dlp rule does not match: the request is decided on what else it is.
    expect(labelled.decide(http()).ruleId).toBe('default');
    expect(labelled.decideProtocol({ direction: 'egress', src: http().src, dst: http().dst, protocol: 'http' })).toBe('needs-l7');
  });

  it('pod identity unknown: appliesTo deny rules are in force, allow rules are not (fail closed)', () => {
    const unknown = compile(null);
    expect(unknown.decide(http(['pci-pan'])).ruleId).toBe('pci-no-pan-egress');
    const team = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 1 }, dst: { ip: '10.9.9.9', port: 8080 } };
    expect(unknown.decideConnection(team)).not.toMatchObject({ ruleId: 'open-for-team' });
    expect(compile({ namespace: 'team', labels: {} }).decideConnection(team)).toMatchObject({ ruleId: 'open-for-team' });
  });

  it('validation: appliesTo only in cluster rules; dlp sensors are names and need HTTP', () => {
    const bad = compilePolicy({
      clusterRules: [{ id: 'a', action: 'deny', appliesTo: { color: 'x' } }, { id: 'b', action: 'deny', protocol: 'tls', dlp: ['pci-pan'] }, { id: 'c', action: 'deny', dlp: 'PCI PAN' }],
      workloadRules: [{ id: 'w', action: 'deny', appliesTo: { labels: { pci: 'true' } } }],
      defaultAction: 'allow', mode: 'protect',
    });
    expect('issues' in bad).toBe(true);
    const messages = 'issues' in bad ? bad.issues.map((i) => `${i.id}:${i.field}: ${i.message}`) : [];
    expect(messages.some((m) => m.startsWith('a:appliesTo.color'))).toBe(true);
    expect(messages.some((m) => m.startsWith('b:dlp') && m.includes("protocol 'tls'"))).toBe(true);
    expect(messages.some((m) => m.startsWith('c:dlp') && m.includes('must be a list of DLP sensor names'))).toBe(true);
    expect(messages.some((m) => m.startsWith('w:appliesTo') && m.includes("only cluster rules may have 'appliesTo'"))).toBe(true);
  });

  it('sidewall policy test --pod takes the protected pod identity', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-applies-'));
    writeFileSync(join(dir, 'cluster.yaml'), JSON.stringify(CLUSTER));
    writeFileSync(join(dir, 'rules.yaml'), '[]');
    const run = async (pod?: string) => {
      const r = await sidewallPolicy('test', join(dir, 'rules.yaml'), '--cluster', join(dir, 'cluster.yaml'), '--default-action', 'allow', '--mode', 'protect', '--json', '--flow', JSON.stringify(http(['pci-pan'])), ...(pod ? ['--pod', pod] : []));
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { ruleId: string }).ruleId;
    };
    expect(await run('{"namespace":"shop","labels":{"pci":"true"}}')).toBe('pci-no-pan-egress');
    expect(await run('{"namespace":"shop","labels":{"app":"cart"}}')).toBe('default');
    expect(await run()).toBe('pci-no-pan-egress'); // unknown pod: the deny is in force
  });

  it('the learner never learns what a rule denies (an allow rule for it would contradict the rule above)', () => {
    const model = new LearnModel({ maxServices: 10, maxPaths: 100, maxSiblings: 8 });
    const base = { type: 'request', direction: 'egress', src: { ip: '10.0.0.1', port: 1 }, dst: { ip: '10.9.9.9', port: 80 }, protocol: 'http', l7: { method: 'POST', path: '/pay' } } as const;
    expect(model.observe({ ...base, verdict: 'would-deny', ruleId: 'pci-no-pan-egress' })).toBe(false);
    expect(model.observe({ ...base, verdict: 'would-deny', ruleId: 'dlp:pci-pan' })).toBe(false);
    expect(model.observe({ ...base, verdict: 'would-deny', ruleId: 'default' })).toBe(true);
  });
});
