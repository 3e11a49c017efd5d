// Flow records as the sidecar writes them (schema/flow-record.schema.json), and the rules engine
// facts the proxy would decide them with, for the learning-mode tests.
import { compilePolicy, readRuleSource, type CompiledPolicy, type FlowFacts, type L7Facts } from '../../../src/policy/index.js';
import type { FlowRecord, WorkloadRecord } from '../../../src/flows/types.js';
import { formatRules, type LearnedRule } from '../../../src/learn/index.js';

export const POD = { namespace: 'shop', name: 'cart-0', ip: '10.1.0.5' };
export const BACKEND: WorkloadRecord = { namespace: 'shop', pod: 'backend-7d9f-abcde', labels: { app: 'backend', 'pod-template-hash': '7d9f' }, serviceAccount: 'backend' };
export const FRONTEND: WorkloadRecord = { namespace: 'web', pod: 'frontend-1', labels: { app: 'frontend', 'pod-template-hash': '55aa' } };

let seq = 0;
let clock = Date.parse('2026-03-01T10:00:00Z');

export function resetClock(): void {
  seq = 0;
  clock = Date.parse('2026-03-01T10:00:00Z');
}

interface Peer {
  ip: string;
  port?: number;
  workload?: WorkloadRecord;
}

function base(type: FlowRecord['type'], direction: FlowRecord['direction'], peer: Peer, port: number, protocol: string, l7?: Record<string, unknown>): FlowRecord {
  clock += 1000;
  const self = { ip: POD.ip, port: direction === 'ingress' ? port : 40000 + (seq % 20000) };
  const remote = { ip: peer.ip, port: direction === 'ingress' ? 50000 + (seq % 10000) : port, ...(peer.workload ? { workload: peer.workload } : {}) };
  const record: FlowRecord = {
    time: new Date(clock).toISOString().replace('Z', '000000Z'),
    seq: ++seq,
    type,
    flowId: `f${seq}`,
    direction,
    src: direction === 'ingress' ? remote : self,
    dst: direction === 'ingress' ? { ...self, port } : remote,
    protocol,
    verdict: 'would-deny',
    ruleId: 'default',
    policy: 'abcdefabcdef',
    pod: POD,
  };
  if (l7 !== undefined) record.l7 = l7;
  return record;
}

export const http = (direction: FlowRecord['direction'], peer: Peer, port: number, method: string, path: string, host?: string): FlowRecord =>
  base('request', direction, peer, port, 'http', { method, path, ...(host ? { host } : {}), status: 200 });
export const grpc = (peer: Peer, port: number, service: string, method: string): FlowRecord =>
  base('request', 'egress', peer, port, 'grpc', { method: 'POST', path: `/${service}/${method}`, service, grpcMethod: method, status: 200, grpcStatus: 0 });
export const dns = (peer: Peer, name: string, type = 'A'): FlowRecord => base('request', 'egress', peer, 53, 'dns', { name, type, rcode: 'NOERROR', answers: 1 });
export const tls = (peer: Peer, port: number, sni?: string): FlowRecord => base('connection', 'egress', peer, port, 'tls', { alpn: ['h2'], version: 'TLS1.3', ...(sni ? { sni } : {}) });
export const tcp = (direction: FlowRecord['direction'], peer: Peer, port: number, protocol = 'tcp'): FlowRecord => base('connection', direction, peer, port, protocol);

/** The facts the proxy decides a record's traffic with. */
export function factsOf(record: FlowRecord): FlowFacts {
  const l7 = record.l7 ?? {};
  const facts: FlowFacts = { direction: record.direction, src: record.src, dst: record.dst, protocol: record.protocol };
  const f: Record<string, unknown> = {};
  if (record.type === 'request' && (record.protocol === 'http' || record.protocol === 'http2' || record.protocol === 'grpc')) {
    f.http = { method: String(l7.method), path: String(l7.path), ...(typeof l7.host === 'string' ? { host: l7.host } : {}) };
    if (record.protocol === 'grpc') f.grpc = { service: String(l7.service), method: String(l7.grpcMethod) };
  } else if (record.protocol === 'dns') {
    f.dns = { name: String(l7.name), type: String(l7.type) };
  } else if (record.protocol === 'tls') {
    f.tls = { alpn: ['h2'], ...(typeof l7.sni === 'string' ? { sni: l7.sni } : {}) };
  }
  facts.l7 = f as L7Facts;
  return facts;
}

/** Compiles generated rules the way the sidecar reads the annotation (YAML text), in protect mode. */
export function protect(rules: readonly LearnedRule[]): CompiledPolicy {
  const text = formatRules(rules, 'yaml');
  const checked = readRuleSource(text, 'learned');
  if (checked.issues.length > 0) throw new Error(`generated rules do not validate: ${JSON.stringify(checked.issues)}\n${text}`);
  const result = compilePolicy({ clusterRules: [], workloadRules: rules, defaultAction: 'deny', mode: 'protect' });
  if ('issues' in result) throw new Error(JSON.stringify(result.issues));
  return result.policy;
}

/**
 * The verdict and rule of a record's traffic under a policy, in the proxy's three stages: at
 * accept (address and port), once the protocol is detected (gRPC is HTTP/2 then: the call is not
 * known yet), and per request with its L7 facts.
 */
export function verdictOf(policy: CompiledPolicy, record: FlowRecord): { verdict: string; ruleId: string } {
  const facts = factsOf(record);
  const { protocol: _protocol, l7: _l7, ...l4 } = facts;
  const atConnect = policy.decideConnection(l4);
  const decision =
    atConnect !== 'needs-l7'
      ? atConnect
      : ((): ReturnType<CompiledPolicy['decide']> => {
          const atProtocol = policy.decideProtocol({ ...l4, protocol: record.protocol === 'grpc' ? 'http2' : record.protocol });
          return atProtocol !== 'needs-l7' ? atProtocol : policy.decide(facts);
        })();
  return { verdict: decision.verdict, ruleId: decision.ruleId };
}
