// The learner as a flow sink: learns in learn mode, raises "new behaviour" alerts with a rule to
// paste in protect mode, keeps its model across restarts, and stays within its memory cap.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createFlowPipeline, type FlowRecord, type FlowRecordDraft } from '../../../src/flows/index.js';
import { generateRules, Learner, LearnModel, newBehaviourAlert, type LearnedRule } from '../../../src/learn/index.js';
import type { Mode } from '../../../src/policy/index.js';
import { assertValidFlowRecords } from '../flows/flow-schema.js';
import { BACKEND, dns, grpc, http, POD, protect, resetClock, tcp, tls, verdictOf } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'sidewall-learn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => resetClock());

const backend = { ip: '10.2.0.7', workload: BACKEND };

/** A pipeline whose sinks are the learner and a collector, as the proxy wires them. */
function wire(mode: { current: Mode }, stateFile?: string) {
  const learner = new Learner({ mode: () => mode.current, ...(stateFile ? { stateFile } : {}), saveIntervalMs: 0 });
  const seen: FlowRecord[] = [];
  const pipeline = createFlowPipeline({
    pod: POD,
    stdout: false,
    ringSize: 0,
    sinks: [learner, { name: 'collect', offer: (e) => void seen.push(e.record), close: async () => undefined }],
  });
  learner.bindEmitter((d) => pipeline.emit(d));
  const emit = (r: FlowRecord): void => {
    const { time: _t, seq: _s, pod: _p, ...draft } = r;
    pipeline.emit(draft as FlowRecordDraft);
  };
  return { learner, pipeline, seen, emit };
}

/** A distinct word of letters only for each number (base 26, a–z), so the classifier keeps it. */
function letters(n: number): string {
  return [...n.toString(26)].map((d) => String.fromCharCode(97 + parseInt(d, 26))).join('');
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Learner', () => {
  it('learns in learn mode only, and alerts on default denials in protect mode with a rule that allows them', async () => {
    const mode: { current: Mode } = { current: 'learn' };
    const { learner, pipeline, seen, emit } = wire(mode);
    emit(http('egress', backend, 80, 'GET', '/v1/items/1'));
    emit(grpc(backend, 50051, 'shop.v1.Inventory', 'Reserve'));
    await tick();
    expect(learner.model.counters.observed).toBe(2);
    const rules = generateRules(learner.model);

    mode.current = 'protect';
    const denied = { ...http('egress', backend, 80, 'DELETE', '/v1/items/77'), verdict: 'denied' as const, ruleId: 'default' };
    emit(denied);
    emit({ ...http('egress', backend, 80, 'GET', '/v1/items/2'), verdict: 'allowed', ruleId: rules[0]!.id }); // allowed: no alert
    emit({ ...grpc(backend, 50051, 'shop.v1.Inventory', 'Purge'), verdict: 'denied', ruleId: 'deny-purge' }); // an explicit deny rule: no alert
    await tick();
    expect(learner.model.counters.observed).toBe(2); // nothing learned in protect mode
    const alerts = seen.filter((r) => r.type === 'alert');
    expect(alerts).toHaveLength(1);
    const alert = alerts[0]!;
    expect(alert.reason).toMatch(/^new behaviour: http DELETE \/v1\/items\/77 egress to backend-7d9f-abcde in shop port 80 was denied by the default action; rule \S+ would allow it$/);
    expect(alert.seq).toBeGreaterThan(seen.find((r) => r.flowId === `f${denied.seq}` && r.type === 'request')!.seq); // after the record it is about
    expect(alert.suggestion?.rule).toMatchObject({ action: 'allow', direction: 'egress', ports: [80], http: { methods: ['DELETE'], paths: ['/v1/items/*'] } });
    expect(parse(alert.suggestion!.yaml)).toEqual([alert.suggestion!.rule]);
    assertValidFlowRecords(seen);
    // One paste: the learned rules plus the suggestion allow it, and a new id on the template too.
    const accepted = protect([...rules, alert.suggestion!.rule as LearnedRule]);
    expect(verdictOf(accepted, http('egress', backend, 80, 'DELETE', '/v1/items/12345')).verdict).toBe('allowed');
    await pipeline.close();
  });

  it('says it once per distinct rule within the alert window', async () => {
    const mode: { current: Mode } = { current: 'protect' };
    const { pipeline, seen, emit, learner } = wire(mode);
    for (let i = 0; i < 5; i++) emit({ ...dns({ ip: '10.96.0.10' }, 'exfil.evil.example'), verdict: 'denied', ruleId: 'default' });
    emit({ ...dns({ ip: '10.96.0.10' }, 'other.evil.example'), verdict: 'denied', ruleId: 'default' });
    await tick();
    const alerts = seen.filter((r) => r.type === 'alert');
    expect(alerts.map((a) => ((a.suggestion!.rule as LearnedRule).dns as { names: string[] } | undefined)?.names)).toEqual([['exfil.evil.example'], ['other.evil.example']]);
    expect(learner.report().status.alertsSuppressed).toBe(4);
    await pipeline.close();
  });

  it('keeps the model across restarts in its state file', async () => {
    const stateFile = join(dir, 'state', 'learn.json');
    const mode: { current: Mode } = { current: 'learn' };
    const first = wire(mode, stateFile);
    first.emit(http('egress', backend, 80, 'GET', '/v1/items/1'));
    first.emit(tcp('egress', { ip: '10.9.9.9' }, 6379, 'redis'));
    await first.pipeline.close(); // the drain flushes the model
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as { services: unknown[] };
    expect(saved.services).toHaveLength(2);

    const second = wire(mode, stateFile);
    second.emit(http('egress', backend, 80, 'POST', '/v1/orders'));
    await tick();
    const rules = generateRules(second.learner.model);
    expect(rules.map((r) => (r.http as { methods: string[]; paths: string[] } | undefined)?.paths.join() ?? r.protocol).sort()).toEqual(['/v1/items/*', '/v1/orders', 'redis']);
    await second.pipeline.close();
  });

  it('starts empty (and keeps the bad file aside) when the state file is unreadable', async () => {
    const stateFile = join(dir, 'bad.json');
    writeFileSync(stateFile, JSON.stringify({ kind: 'sidewall-learn-model', version: 1, observed: 1, folded: 0, dropped: 0, services: [{ direction: 'sideways' }] }));
    const { learner, pipeline } = wire({ current: 'learn' }, stateFile);
    expect(learner.model.serviceCount).toBe(0);
    expect(existsSync(`${stateFile}.bad`)).toBe(true);
    await pipeline.close();
  });

  it('stays within its memory cap under a flood of unique paths, and counts what it folded', async () => {
    const { learner, pipeline, emit } = wire({ current: 'learn' });
    const model = learner.model;
    const limit = model.limits.maxPaths;
    for (let i = 0; i < 50_000; i++) {
      // Unique words (no digits: the classifier keeps them), as a scanner or a fuzzer would send.
      const word = letters(i);
      emit(http('ingress', { ip: '10.5.0.1' }, 8080, 'GET', `/files/${word}/x${word}`));
      if (i % 1000 === 999) await tick();
    }
    await tick();
    expect(model.nodeCount).toBeLessThanOrEqual(limit);
    expect(model.folded).toBeGreaterThan(0);
    const rules = generateRules(model);
    expect(rules.length).toBeLessThan(5);
    // What was folded is still allowed by the broader template.
    expect(verdictOf(protect(rules), http('ingress', { ip: '10.5.0.1' }, 8080, 'GET', '/files/qwerty/xqwerty')).verdict).toBe('allowed');
    await pipeline.close();
  });

  it('folds into prefix/** once the node budget is spent', () => {
    const model = new LearnModel({ maxPaths: 50, maxSiblings: 1000 });
    for (let i = 0; i < 500; i++) {
      const word = letters(i);
      model.observe(http('ingress', { ip: '10.5.0.1' }, 8080, 'GET', `/a${word}/b${word}`));
    }
    expect(model.nodeCount).toBeLessThanOrEqual(50);
    const paths = generateRules(model).flatMap((r) => (r.http as { methods: string[]; paths: string[] } | undefined)?.paths ?? []);
    expect(paths).toContain('/**');
    expect(model.folded).toBe(500 - paths.filter((p) => !p.endsWith('/**')).length);
  });
});

describe('the new-behaviour phrase comes from the protocol plug-in (learn.phrase)', () => {
  const rule = { id: 'r', action: 'allow' } as unknown as LearnedRule;
  const db = { ip: '10.2.0.9' };
  const phrase = (record: FlowRecord): string => newBehaviourAlert(record, rule).reason!.replace(/^new behaviour: /, '').replace(/ was denied by the default action.*$/, '');
  it.each([
    ['http', http('egress', backend, 80, 'GET', '/a'), 'http GET /a egress to backend-7d9f-abcde in shop port 80'],
    ['grpc', grpc(backend, 50051, 'shop.v1.Cart', 'Add'), 'gRPC shop.v1.Cart/Add egress to backend-7d9f-abcde in shop port 50051'],
    ['dns', dns({ ip: '10.96.0.10' }, 'x.example', 'TXT'), 'DNS TXT x.example egress to 10.96.0.10 port 53'],
    ['tls', tls(db, 443, 'api.example'), 'TLS to SNI api.example egress to 10.2.0.9 port 443'],
    ['tls without SNI', tls(db, 443), 'TLS without SNI egress to 10.2.0.9 port 443'],
    ['redis', { ...tcp('egress', db, 6379, 'redis'), type: 'request', l7: { command: 'FLUSHALL' } } as FlowRecord, 'redis FLUSHALL egress to 10.2.0.9 port 6379'],
    ['redis with a key', { ...tcp('egress', db, 6379, 'redis'), type: 'request', l7: { command: 'GET', keys: ['session:1'] } } as FlowRecord, 'redis GET session:1 egress to 10.2.0.9 port 6379'],
    ['mysql', { ...tcp('egress', db, 3306, 'mysql'), type: 'request', l7: { statements: ['SELECT', 'DROP'], statement: 'SELECT' } } as FlowRecord, 'mysql SELECT, DROP egress to 10.2.0.9 port 3306'],
    ['postgres session', { ...tcp('egress', db, 5432, 'postgres'), l7: { user: 'app' } } as FlowRecord, 'postgres connection egress to 10.2.0.9 port 5432'],
    ['tcp', tcp('ingress', db, 22), 'tcp connection ingress from 10.2.0.9 port 22'],
  ])('%s', (_name, record, expected) => expect(phrase(record)).toBe(expected));
});

