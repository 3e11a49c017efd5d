// The flow-record schema's l7 part is assembled from the protocol registry (each protocol's
// recordFields): a record's l7 is checked against its protocol's fields, strictly.
import { describe, expect, it } from 'vitest';
import { PROTOCOL_PLUGINS } from '../../../src/protocols/registry.js';
import { flowRecordSchema } from '../../../src/schema/flow-record.js';
import { flowRecordErrors, l7Errors } from './flow-schema.js';

const record = (protocol: string, l7: Record<string, unknown>): Record<string, unknown> => ({
  time: '2026-12-03T19:00:00.000000000Z', seq: 1, type: 'request', flowId: 'f1', direction: 'egress',
  src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 80 }, protocol, l7,
  verdict: 'allowed', ruleId: 'r', policy: 'abcdefabcdef', pod: { namespace: 'shop', name: 'cart-0' },
});

describe('flow records: l7 fields per protocol', () => {
  it('lists every registered protocol and the protocols it carries', () => {
    const defs = Object.keys(flowRecordSchema().$defs as object);
    for (const p of PROTOCOL_PLUGINS) for (const name of [p.name, ...(p.ruleProtocols ?? [])]) expect(defs).toContain(`l7-${name}`);
  });

  it.each([
    ['http', { method: 'GET', path: '/a', host: 'x', status: 200, informational: [100] }],
    ['grpc', { method: 'POST', path: '/s.S/M', authority: 'x', service: 's.S', grpcMethod: 'M', status: 200, grpcStatus: 0 }],
    ['dns', { name: 'a.example', type: 'A', rcode: 'NOERROR', answers: 1 }],
    ['redis', { command: 'GET', keys: ['session:1'], reply: '$' }],
    ['mysql', { user: 'app', database: 'shop', command: 'QUERY', statement: 'SELECT', statements: ['SELECT'], tables: ['items'], templates: ['SELECT items'] }],
    ['postgres', { kind: 'ssl-request', encrypted: true }],
    ['tcp', { detection: 'timeout' }],
    ['icmp', { icmp: { type: 8, code: 0 } }],
  ])('a %s record with its own fields validates', (protocol, l7) => expect(flowRecordErrors(record(protocol, l7))).toEqual([]));

  it.each([
    ['http', { method: 'GET', path: '/a', grpcMethod: 'M' }, /additional properties \(grpcMethod\)/],
    ['redis', { command: 'GET', keys: Array.from({ length: 17 }, (_, i) => `k${i}`) }, /\/l7\/keys must NOT have more than 16 items/],
    ['postgres', { message: 'X' }, /\/l7\/message must be equal to one of the allowed values/],
    ['tcp', { sni: 'a.example' }, /additional properties \(sni\)/],
    ['tls', { sni: 7 }, /\/l7\/sni must be string/],
  ])('a %s record with a field its protocol does not have, or of the wrong type, does not', (protocol, l7, message) => {
    expect(flowRecordErrors(record(protocol, l7)).join('; ')).toMatch(message);
    expect(l7Errors(protocol, l7)).not.toEqual([]);
  });
});
