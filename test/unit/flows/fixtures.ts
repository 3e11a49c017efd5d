// Record drafts for the flow tests, varied the way the proxy produces them.
import type { FlowRecordDraft, PodRef } from '../../../src/flows/index.js';

export const testPod: PodRef = { namespace: 'shop', name: 'cart-0', ip: '10.0.0.5', labels: { app: 'cart' }, serviceAccount: 'cart' };

export function draftFor(i: number): FlowRecordDraft {
  const kind = i % 4;
  const base = {
    flowId: `f-${Math.floor(i / 3)}`,
    direction: (['ingress', 'egress', 'intra'] as const)[i % 3] ?? 'egress',
    src: { ip: '10.0.0.5', port: 40000 + (i % 20000), workload: { namespace: 'shop', pod: 'cart-0', labels: { app: 'cart' } } },
    dst: { ip: i % 2 === 0 ? '10.0.1.7' : 'fd00::7', port: 8080 },
    policy: 'a1b2c3d4',
  };
  if (kind === 0) {
    return { ...base, type: 'request', protocol: 'http', l7: { method: 'GET', path: `/items/${i}`, host: 'catalog', status: 200 }, verdict: 'allowed', ruleId: 'allow-catalog' };
  }
  if (kind === 1) {
    return { ...base, type: 'request', protocol: 'http', l7: { method: 'POST', path: '/admin', host: 'catalog', status: 403 }, verdict: 'denied', ruleId: 'deny-admin' };
  }
  if (kind === 2) {
    return { ...base, type: 'alert', protocol: 'ssh', verdict: 'denied', ruleId: null, tunnel: { kind: 'ssh', expected: 'http', detected: 'ssh', blocked: true, evidence: 'client sent "SSH-2.0-OpenSSH_9.2p1"', confidence: 0.99 }, reason: 'ssh banner on an http port' };
  }
  return { ...base, type: 'connection', protocol: 'tcp', verdict: 'would-deny', ruleId: null, bytes: { sent: i, received: 2 * i }, durationMs: 12.5, reason: 'fin' };
}
