// The learner and Services (issue 20): learned egress rules name the Service called, not its
// cluster IP, and the rules they make allow that traffic again (and nothing at another Service).
import { beforeEach, describe, expect, test } from 'vitest';
import { generateRules, LearnModel, suggestRule } from '../../../src/learn/index.js';
import type { FlowRecord } from '../../../src/flows/types.js';
import { http, protect, resetClock, tcp, verdictOf } from '../learn/helpers.js';

const PAYMENTS = { namespace: 'shop', name: 'payments' };

function toService(record: FlowRecord, service = PAYMENTS): FlowRecord {
  record.dst = { ...record.dst, service, workload: { namespace: 'shop', labels: { app: 'payments' } } };
  return record;
}

beforeEach(() => resetClock());

describe('learning calls to Services', () => {
  test('learned rules name the Service, and allow what was learned', () => {
    const model = new LearnModel();
    const records = [
      toService(http('egress', { ip: '10.96.0.20' }, 80, 'GET', '/api/charges/1')),
      toService(http('egress', { ip: '10.96.0.20' }, 80, 'GET', '/api/charges/2')),
      toService(tcp('egress', { ip: '10.96.0.20' }, 9090)),
    ];
    for (const r of records) model.observe(r);
    const rules = generateRules(model);
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      expect(rule.peer).toEqual({ service: 'shop/payments' });
      expect(JSON.stringify(rule)).not.toContain('10.96.0.20');
    }
    expect(rules.map((r) => r.id).join(' ')).toContain('svc-payments.shop');
    const policy = protect(rules);
    for (const r of records) expect(verdictOf(policy, r).verdict).toBe('allowed');
    // Another Service on the same port is not opened by them.
    const other = toService(http('egress', { ip: '10.96.0.21' }, 80, 'GET', '/api/charges/1'), { namespace: 'shop', name: 'admin' });
    expect(verdictOf(policy, other)).toEqual({ verdict: 'denied', ruleId: 'default' });
  });

  test('the drift suggestion names the Service too', () => {
    const rule = suggestRule(toService(tcp('egress', { ip: '10.96.0.20' }, 9090)));
    expect(rule?.peer).toEqual({ service: 'shop/payments' });
  });
});
