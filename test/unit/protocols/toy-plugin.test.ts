// The plug-in shape (issue 17): a protocol that exists only in this test — one folder-like module
// (./toy/index.ts) and one registration call — is detected, parsed, matched by its own rule
// block, answered when denied, recorded, verified on its declared port, described and learned,
// with nothing else changed.
// Before registration the same rules do not compile: the rules know only registered protocols.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flowDetail } from '../../../src/flows/flow-table.js';
import type { FlowRecord } from '../../../src/flows/types.js';
import { LearnModel } from '../../../src/learn/model.js';
import { generateRules } from '../../../src/learn/rules.js';
import { compilePolicy, type CompiledPolicy } from '../../../src/policy/index.js';
import { detectClientProtocol, detectOnTimeout } from '../../../src/protocols/detect.js';
import { PROTOCOL_PLUGINS, registerProtocol, ruleBlockSchemas, unregisterProtocol } from '../../../src/protocols/registry.js';
import { flowRecordSchema } from '../../../src/schema/flow-record.js';
import { checkDeclared } from '../../../src/tunnels/protocol-verification.js';
import { flowRecordErrorsAgainst } from '../flows/flow-schema.js';
import { RecordingSink, filterFor } from '../enforcement/filter-fixture.js';
import { toyProtocol } from './toy/index.js';

/** The toy protocol's port in these tests (the fixture's filter dials 10.0.0.2 there). */
const TOY_PORT = 7070;

const RULES = [
  { id: 'toy-get', action: 'allow', toy: { verbs: ['GET', 'LIST'] } },
  { id: 'toy-no-del', action: 'deny', protocol: 'toy', toy: { verbs: ['DEL'] } },
];

function compile(rules: unknown[]): ReturnType<typeof compilePolicy> {
  return compilePolicy({ clusterRules: [], workloadRules: rules, defaultAction: 'deny', mode: 'protect' });
}

describe('the core reads the registry', () => {
  it('names no protocol in the connection filter, detection, the observe table, the rules engine or the learner', () => {
    // (Tunnel detectors know protocols on purpose: SSH anywhere, TLS-wrapped variants.)
    const folder = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`);
    const core = ['src/enforcement/connection-filter.ts', 'src/protocols/detect.ts', 'src/flows/flow-table.ts', ...folder('src/policy'), ...folder('src/learn')];
    expect(core.length).toBeGreaterThan(15);
    const names = [...PROTOCOL_PLUGINS.flatMap((p) => [p.name, ...(p.ruleProtocols ?? [])])];
    for (const file of core) {
      const text = readFileSync(file, 'utf8')
        .replace(/^\s*(\/\/|\*|\/\*\*).*$/gm, '') // code, not comments
        .replace(/RULE_DOCUMENT_KEYS = \[[^\]]*\]/, ''); // a sidecar config's keys (its `http:` settings), not protocols
      for (const name of names) expect({ file, name, found: text.includes(`'${name}'`) }).toEqual({ file, name, found: false });
    }
  });
});

describe('a protocol added by one folder and one registration', () => {
  it('is unknown to the rules before it is registered', () => {
    const r = compile(RULES);
    expect('issues' in r && r.issues.map((i) => i.field)).toEqual(expect.arrayContaining(['toy', 'protocol']));
  });

  describe('once registered', () => {
    beforeAll(() => registerProtocol(toyProtocol));
    afterAll(() => unregisterProtocol('toy'));

    it('supplies its rule block schema and validation', () => {
      expect(ruleBlockSchemas().toy).toMatchObject({ type: 'object' });
      const bad = compile([{ id: 'x', action: 'allow', toy: { verbs: [] } }]);
      expect('issues' in bad && bad.issues[0]).toMatchObject({ field: 'toy.verbs' });
      const wrongProtocol = compile([{ id: 'x', action: 'allow', protocol: 'http', toy: { verbs: ['GET'] } }]);
      expect('issues' in wrongProtocol && wrongProtocol.issues[0]?.message).toMatch(/needs protocol toy/);
    });

    it('is detected from its first bytes, and from a prefix cut short', () => {
      expect(detectClientProtocol(Buffer.from('TOY GET a\r\n'))).toMatchObject({ kind: 'match', protocol: 'toy' });
      expect(detectClientProtocol(Buffer.from('TO'))).toEqual({ kind: 'more' });
      expect(detectOnTimeout(Buffer.from('TO'))).toBe('toy');
    });

    it('decides each command by its rule block, answers a denial, records each, at every chunk boundary', () => {
      const r = compile(RULES);
      if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
      const stream = Buffer.from('TOY GET a\r\nTOY DEL b\r\nTOY LIST c\r\nTOY PUT d\r\n', 'latin1');
      for (let cut = 0; cut <= stream.length; cut++) {
        const sink = new RecordingSink();
        const filter = filterFor(sink, r.policy, TOY_PORT);
        for (const piece of [stream.subarray(0, cut), stream.subarray(cut)]) if (piece.length > 0) filter.clientData(piece);
        filter.serverData(Buffer.from('+OK\r\n+OK\r\n'));
        expect(filter.protocol).toBe('toy');
        // What the server received: only the allowed commands.
        expect(Buffer.concat(sink.server).toString('latin1')).toBe('TOY GET a\r\nTOY LIST c\r\n');
        expect(Buffer.concat(sink.client).toString('latin1')).toContain('-DENIED toy-no-del\r\n');
        expect(Buffer.concat(sink.client).toString('latin1')).toContain('-DENIED default\r\n');
        expect(sink.outcomes.map((o) => [o.protocol, o.l7.verb, o.decision.ruleId, o.decision.verdict])).toEqual([
          ['toy', 'GET', 'toy-get', 'allowed'],
          ['toy', 'DEL', 'toy-no-del', 'denied'],
          ['toy', 'LIST', 'toy-get', 'allowed'],
          ['toy', 'PUT', 'default', 'denied'],
        ]);
        expect(sink.closed).toBeNull(); // the connection goes on after a denial
      }
    });

    it('is verified on a port declared for it: anything else spoken there is a mismatch', () => {
      expect(checkDeclared('toy', 'toy', Buffer.from('TOY GET a\r\n'), 'client')).toBeNull();
      expect(checkDeclared('toy', 'http', Buffer.from('GET / HTTP/1.1\r\n'), 'client')).toMatchObject({ kind: 'protocol-mismatch', expected: 'toy', detected: 'http' });
    });

    it('refuses what its parser cannot read (fail closed under protect)', () => {
      const r = compile(RULES);
      if (!('policy' in r)) throw new Error('compile');
      const sink = new RecordingSink();
      const filter = filterFor(sink, r.policy, TOY_PORT);
      filter.clientData(Buffer.from('TOY GET a\r\nTOY get; rm -rf\r\n'));
      expect(sink.closed).toMatch(/^reset:parser-error:ERR_MALFORMED/);
      expect(Buffer.concat(sink.server).toString('latin1')).toBe('TOY GET a\r\n');
    });

    it('has its record fields in the flow-record schema (its recordFields; no other file changed)', () => {
      const record = (l7: Record<string, unknown>): Record<string, unknown> => ({
        time: '2026-12-03T19:00:00.000000000Z', seq: 1, type: 'request', flowId: 'f1', direction: 'egress',
        src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: TOY_PORT }, protocol: 'toy', l7,
        verdict: 'allowed', ruleId: 'toy-get', policy: 'abcdefabcdef', pod: { namespace: 'shop', name: 'cart-0' },
      });
      const schema = flowRecordSchema();
      expect(schema.$defs).toHaveProperty('l7-toy');
      // What the filter recorded for the toy commands (the test above) validates...
      const r = compile(RULES);
      if (!('policy' in r)) throw new Error('compile');
      const sink = new RecordingSink();
      filterFor(sink, r.policy, TOY_PORT).clientData(Buffer.from('TOY GET a\r\nTOY DEL b\r\n'));
      expect(sink.outcomes).toHaveLength(2);
      for (const o of sink.outcomes) expect(flowRecordErrorsAgainst(schema, record(o.l7))).toEqual([]);
      // ...and fields it does not declare, or of another type, do not.
      expect(flowRecordErrorsAgainst(schema, record({ verb: 'GET', method: 'GET' })).join()).toMatch(/additional properties \(method\)/);
      expect(flowRecordErrorsAgainst(schema, record({ verb: 7 })).join()).toMatch(/\/l7\/verb must be string/);
      expect(flowRecordErrorsAgainst(schema, record({ verb: 'get' })).join()).toMatch(/\/l7\/verb must match pattern/);
      // Every connection may carry the connection fields (a parser error, an undetected stream).
      expect(flowRecordErrorsAgainst(schema, record({ verb: 'GET', parseError: 'ERR_MALFORMED' }))).toEqual([]);
    });

    it('is described in the observe table and learned into its own rule block', () => {
      const record = { type: 'request', protocol: 'toy', l7: { verb: 'GET', arg: 'a' } } as unknown as FlowRecord;
      expect(flowDetail(record)).toContain('GET a');
      const model = new LearnModel();
      for (const verb of ['GET', 'LIST', 'GET']) {
        model.observe({ type: 'request', direction: 'egress', src: { ip: '10.0.0.1', port: 1 }, dst: { ip: '10.0.0.2', port: 7070 }, protocol: 'toy', l7: { verb, arg: 'x' } }, 1_700_000_000_000);
      }
      // The connection itself is learned from its requests, not as an L4 rule.
      expect(model.observe({ type: 'connection', direction: 'egress', src: { ip: '10.0.0.1', port: 1 }, dst: { ip: '10.0.0.2', port: 7070 }, protocol: 'toy' }, 1_700_000_000_000)).toBe(false);
      const rules = generateRules(model);
      expect(rules).toHaveLength(1);
      expect(rules[0]).toMatchObject({ protocol: 'toy', toy: { verbs: ['GET', 'LIST'] }, ports: [7070] });
      // The learned rule is a valid rule, and allows what was seen.
      const learned = compile(rules);
      if (!('policy' in learned)) throw new Error(JSON.stringify(learned.issues));
      const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: TOY_PORT }, protocol: 'toy', l7: { toy: { verb: 'LIST' } } };
      expect(learned.policy.decide(facts)).toMatchObject({ action: 'allow', ruleId: rules[0]!.id });
      expect(learned.policy.decide({ ...facts, l7: { toy: { verb: 'DEL' } } })).toMatchObject({ action: 'deny' });
    });
  });
});
