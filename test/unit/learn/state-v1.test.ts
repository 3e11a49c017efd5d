// A model saved by an earlier sidewall (state version 1: each entry's tries, flags and value sets
// were fields of their own, `paths`, `names`, `unnamed`, `grpc`, `dnsTypes`, `db`, `templates`)
// still loads, and gives the rules the model it was saved from gives.
import { describe, expect, it } from 'vitest';
import { generateRules, LearnModel, type ModelState } from '../../../src/learn/index.js';
import { BACKEND, dns, grpc, http, resetClock, tcp, tls } from './helpers.js';

/** Version 2's entry as version 1 wrote it. */
function toVersion1(state: ModelState): Record<string, unknown> {
  return {
    ...state,
    version: 1,
    services: state.services.map(({ tries, values, flags, ...rest }) => {
      const out: Record<string, unknown> = { ...rest, ...tries };
      for (const flag of flags ?? []) out[flag] = true;
      const { dnsTypes, ...db } = values ?? {};
      if (dnsTypes !== undefined) out.dnsTypes = dnsTypes;
      if (Object.keys(db).length > 0) out.db = db;
      return out;
    }),
  };
}

describe('learn state version 1', () => {
  it('loads into the same rules as the model it was saved from', () => {
    resetClock();
    const model = new LearnModel();
    const backend = { ip: '10.1.0.9', workload: BACKEND };
    model.observe(http('egress', backend, 8080, 'GET', '/v1/items/42', 'api.shop.svc.cluster.local'));
    model.observe(http('egress', backend, 8080, 'POST', '/v1/orders'));
    model.observe(grpc(backend, 9090, 'shop.Cart', 'Add'));
    model.observe(dns({ ip: '10.96.0.10' }, 'api.example.com', 'AAAA'));
    model.observe(tls({ ip: '1.2.3.4' }, 443, 'pay.example.com'));
    model.observe(tls({ ip: '1.2.3.5' }, 443));
    model.observe({ ...tcp('egress', backend, 6379, 'redis'), type: 'request', l7: { command: 'GET', keys: ['session:1'] } });
    model.observe({ ...tcp('egress', backend, 5432, 'postgres'), type: 'request', l7: { user: 'app', database: 'shop', statements: ['SELECT'] } });
    const state = model.toState();
    expect(state.version).toBe(2);
    const v1 = toVersion1(state);
    // The fields version 1 had, so the translation is checked against that shape.
    const fields = new Set((v1.services as Array<Record<string, unknown>>).flatMap((s) => Object.keys(s)));
    for (const f of ['paths', 'names', 'unnamed', 'grpc', 'dnsTypes', 'db']) expect(fields).toContain(f);
    const loaded = new LearnModel();
    loaded.load(JSON.parse(JSON.stringify(v1)), 'old-state.json');
    const rules = generateRules(model);
    expect(rules.length).toBeGreaterThan(6);
    expect(generateRules(loaded)).toEqual(rules);
    expect(loaded.toState().services).toEqual(state.services);
  });
});
