import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { checkRuleSource } from '../../src/policy/index.js';
import { createAlertWriter, defaultInjectorSettings, handleMutation, handleValidation, parseAdmissionReview, type AlertRecord } from '../../injector/index.js';
import { applyReviewPatch } from './helpers.js';
import { KIND, cronJob, deployment, podCreateReview, replicaSetPod, updateReview, workloadCreateReview } from './fixtures.js';

const settings = defaultInjectorSettings();

const validRules = `
- id: allow-web
  action: allow
  direction: ingress
  ports: 8080
  protocol: http
  http: { methods: [GET], paths: ["/api/*"] }
`;
// Three separate mistakes: unknown action, bad CIDR, duplicated id.
const invalidRules = `
- id: web
  action: permit
- id: web
  action: deny
  peer: { cidr: 10.0.0.0/33 }
`;

function collectAlerts(): { sink: ReturnType<typeof createAlertWriter>; records: () => AlertRecord[] } {
  const lines: string[] = [];
  const out = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done(); } });
  return { sink: createAlertWriter(out), records: () => lines.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as AlertRecord) };
}

// As the API server does: mutating webhooks first, so a Pod CREATE is validated as injected.
function validate(review: Record<string, unknown>) {
  const alerts = collectAlerts();
  const request = parseAdmissionReview(JSON.stringify(review));
  if (request.operation === 'CREATE' && request.kind.kind === 'Pod') {
    const mutation = handleMutation(request, settings);
    if (!mutation.response.allowed) return { response: mutation.response, problems: [], alerts: [] };
    request.object = applyReviewPatch(request.object, mutation.response);
  }
  const outcome = handleValidation(request, settings, checkRuleSource, alerts.sink);
  return { ...outcome, alerts: alerts.records() };
}

describe('validating webhook: rules annotation', () => {
  it('admits a Deployment whose pod template has valid rules', () => {
    const { response } = validate(workloadCreateReview(KIND.deployment, deployment({ 'sidewall.io/rules': validRules }), { namespace: 'shop', name: 'cart', user: 'sec-bob', groups: ['sidewall:policy-admins'] }));
    expect(response.allowed).toBe(true);
  });

  it('denies a Deployment with invalid rules and lists every error with rule index and field', () => {
    const { response } = validate(workloadCreateReview(KIND.deployment, deployment({ 'sidewall.io/rules': invalidRules }), { namespace: 'shop', name: 'cart' }));
    expect(response.allowed).toBe(false);
    expect(response.status?.code).toBe(403);
    const message = response.status!.message!;
    expect(message).toContain('the pod template of Deployment shop/cart');
    expect(message).toMatch(/rules\[0\]\.action: .*permit/);
    expect(message).toMatch(/rules\[1\]\.peer/);
    expect(message).toMatch(/rules\[1\]\.id/);
    const independent = checkRuleSource(invalidRules, 'x');
    expect(message.split('\n').filter((line) => line.includes('sidewall.io/rules:')).length).toBe(independent.length);
  });

  it("denies a CronJob whose job template's pod template has unparsable rules", () => {
    const { response } = validate(workloadCreateReview(KIND.cronJob, cronJob({ 'sidewall.io/rules': '- id: x\n  action: [unclosed' }), { namespace: 'ops', name: 'nightly-backup' }));
    expect(response.allowed).toBe(false);
    expect(response.status!.message).toContain('CronJob ops/nightly-backup');
    expect(response.status!.message).toMatch(/not valid YAML or JSON/);
  });

  it('denies a pod with a bad mode and a bad port list, naming both annotations', () => {
    const { response } = validate(podCreateReview(replicaSetPod({ 'sidewall.io/mode': 'enforce', 'sidewall.io/exclude-inbound-ports': '22,http' }), { namespace: 'shop' }));
    expect(response.allowed).toBe(false);
    expect(response.status!.message).toContain("sidewall.io/mode: 'enforce' is not a mode");
    expect(response.status!.message).toContain("sidewall.io/exclude-inbound-ports: 'http' is not a port number");
    expect(response.status!.message).toContain('(2 problems)');
  });

  it('does not re-check unchanged invalid rules on an unrelated update (e.g. scaling)', () => {
    const before = deployment({ 'sidewall.io/rules': invalidRules });
    const after = structuredClone(before);
    (after.spec as { replicas: number }).replicas = 5;
    const { response } = validate(updateReview(KIND.deployment, before, after, { namespace: 'shop', name: 'cart', user: 'system:serviceaccount:kube-system:horizontal-pod-autoscaler', groups: ['system:serviceaccounts'] }));
    expect(response.allowed).toBe(true);
  });
});

describe('validating webhook: who may change policy annotations', () => {
  const before = replicaSetPod({ 'sidewall.io/rules': validRules, 'sidewall.io/mode': 'protect' });
  const loosened = structuredClone(before);
  (loosened.metadata as { annotations: Record<string, string> }).annotations['sidewall.io/mode'] = 'monitor';
  const metadata = (loosened.metadata as { name?: string });
  metadata.name = 'cart-7d9f8b6c4-abcde';
  (before.metadata as { name?: string }).name = 'cart-7d9f8b6c4-abcde';

  it('allows a member of an allowed group', () => {
    const { response, alerts } = validate(updateReview(KIND.pod, before, loosened, { namespace: 'shop', name: 'cart-7d9f8b6c4-abcde', user: 'sec-bob', groups: ['sidewall:policy-admins', 'system:authenticated'] }));
    expect(response.allowed).toBe(true);
    expect(alerts).toEqual([]);
  });

  it('denies anyone else and emits an alert record with who, where and what', () => {
    const { response, alerts } = validate(updateReview(KIND.pod, before, loosened, { namespace: 'shop', name: 'cart-7d9f8b6c4-abcde', user: 'dev-alice', groups: ['developers', 'system:authenticated'] }));
    expect(response.allowed).toBe(false);
    expect(response.status!.message).toContain('dev-alice may not change sidewall.io/mode on Pod shop/cart-7d9f8b6c4-abcde');
    expect(alerts).toHaveLength(1);
    const alert = alerts[0]!;
    expect(alert.type).toBe('alert');
    expect(alert.seq).toBe(1);
    expect(alert.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    expect(Math.abs(Date.parse(alert.time) - Date.now())).toBeLessThan(60_000);
    expect(alert.user).toBe('dev-alice');
    expect(alert.groups).toEqual(['developers', 'system:authenticated']);
    expect(alert.pod).toEqual({ namespace: 'shop', name: 'cart-7d9f8b6c4-abcde' });
    expect(alert.changes).toEqual([{ annotation: 'sidewall.io/mode', change: 'modified', before: 'protect', after: 'monitor' }]);
  });

  it('guards pod templates too: removing the rules from a StatefulSet by a developer is denied', () => {
    const sts = (annotations: Record<string, string>) => ({ ...deployment(annotations), kind: 'StatefulSet' });
    const { response, alerts } = validate(updateReview(KIND.statefulSet, sts({ 'sidewall.io/rules': validRules }), sts({}), { namespace: 'shop', name: 'cart', user: 'dev-alice', groups: ['developers'] }));
    expect(response.allowed).toBe(false);
    expect(alerts[0]!.changes![0]).toMatchObject({ annotation: 'sidewall.io/rules', change: 'removed' });
    expect(alerts[0]!.object).toEqual({ kind: 'StatefulSet', namespace: 'shop', name: 'cart' });
    expect(alerts[0]!.pod).toBeUndefined();
  });

  it('lets anyone change annotations the guard does not watch', () => {
    const after = structuredClone(before);
    (after.metadata as { annotations: Record<string, string> }).annotations['example.com/owner'] = 'team-a';
    const { response } = validate(updateReview(KIND.pod, before, after, { namespace: 'shop', name: 'cart-7d9f8b6c4-abcde', user: 'dev-alice', groups: ['developers'] }));
    expect(response.allowed).toBe(true);
  });
});
