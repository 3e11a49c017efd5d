// Learning the databases: Redis commands by key prefix, PostgreSQL users/databases/verbs; the
// generated rules allow what was seen (new keys under the same prefix included) and nothing else.
import { describe, expect, it } from 'vitest';
import { generateRules, LearnModel } from '../../../src/learn/index.js';
import type { FlowRecord } from '../../../src/flows/types.js';
import type { FlowFacts } from '../../../src/policy/index.js';
import { POD, protect } from './helpers.js';

let seq = 0;
function request(port: number, protocol: string, l7: Record<string, unknown>): FlowRecord {
  seq++;
  return {
    time: new Date(1_700_000_000_000 + seq * 1000).toISOString(),
    seq,
    type: 'request',
    flowId: `f${seq}`,
    direction: 'egress',
    src: { ip: POD.ip, port: 40000 + seq },
    dst: { ip: '10.2.0.9', port, workload: { namespace: 'shop', labels: { app: 'store' } } },
    protocol,
    verdict: 'would-deny',
    ruleId: 'default',
    policy: 'abcdefabcdef',
    pod: POD,
    l7,
  };
}

const facts = (port: number, protocol: string, l7: FlowFacts['l7']): FlowFacts => ({
  direction: 'egress', src: { ip: POD.ip, port: 1 }, dst: { ip: '10.2.0.9', port, workload: { namespace: 'shop', labels: { app: 'store' } } }, protocol, l7,
});

describe('learning databases', () => {
  it('Redis: commands per key prefix; PostgreSQL: users, databases, statement verbs', () => {
    const model = new LearnModel();
    for (let i = 0; i < 20; i++) {
      model.observe(request(6379, 'redis', { command: 'GET', keys: [`session:${crypto.randomUUID()}`] }));
      model.observe(request(6379, 'redis', { command: 'SET', keys: [`session:${i}`] }));
    }
    model.observe(request(6379, 'redis', { command: 'INCR', keys: ['counter'] }));
    model.observe(request(6379, 'redis', { command: 'PING' }));
    model.observe(request(5432, 'postgres', { user: 'app', database: 'shop', statements: ['SELECT'] }));
    model.observe(request(5432, 'postgres', { user: 'app', database: 'shop', statements: ['INSERT'] }));
    const rules = generateRules(model);
    expect(rules.filter((r) => r.protocol === 'redis').map((r) => r.redis)).toEqual(expect.arrayContaining([
      { commands: ['GET', 'SET'], keys: ['session:*'] }, { commands: ['INCR'], keys: ['counter'] }, { commands: ['PING'] },
    ]));
    expect(rules.find((r) => r.protocol === 'postgres')?.postgres).toEqual({ users: ['app'], databases: ['shop'], statements: ['INSERT', 'SELECT'] });
    const policy = protect(rules);
    const redis = (command: string, keys: string[]) => policy.decide(facts(6379, 'redis', { redis: { command, keys } })).verdict;
    expect(redis('GET', ['session:new'])).toBe('allowed');
    expect(redis('GET', ['secret:1'])).toBe('denied');
    expect(redis('FLUSHALL', [])).toBe('denied');
    const pg = (statement?: string) => policy.decide(facts(5432, 'postgres', { postgres: { user: 'app', database: 'shop', ...(statement ? { statement } : {}) } })).verdict;
    expect(pg()).toBe('allowed'); // the session starts
    expect(pg('SELECT')).toBe('allowed');
    expect(pg('DROP')).toBe('denied');
  });
});
