// What the connection-filter tests share: a policy from rules, a sink that records what each side
// would get, a filter for one egress connection, and a stream cut at given points.
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import type { DlpEngine } from '../../../src/content/dlp/index.js';
import type { DlpAlert, FilterSink, RequestOutcome } from '../../../src/enforcement/types.js';
import { compilePolicy, type CompiledPolicy } from '../../../src/policy/index.js';
import type { TunnelFinding } from '../../../src/tunnels/types.js';
import { l7Errors } from '../flows/flow-schema.js';

export function policyOf(rules: unknown[], mode: 'protect' | 'monitor' = 'protect'): CompiledPolicy {
  const r = compilePolicy({ clusterRules: [], workloadRules: rules, defaultAction: 'deny', mode });
  if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

export class RecordingSink implements FilterSink {
  server: Buffer[] = [];
  client: Buffer[] = [];
  outcomes: RequestOutcome[] = [];
  alerts: TunnelFinding[] = [];
  dlp: DlpAlert[] = [];
  closed: string | null = null;
  toServer(bytes: Buffer): void {
    this.server.push(Buffer.from(bytes));
  }
  toClient(bytes: Buffer): void {
    this.client.push(Buffer.from(bytes));
  }
  close(how: 'fin' | 'reset', reason: string): void {
    this.closed ??= `${how}:${reason}`;
  }
  request(outcome: RequestOutcome): void {
    // Its record's l7 fields are what the flow-record schema says this protocol's are.
    const errors = l7Errors(outcome.protocol, outcome.l7);
    if (errors.length > 0) throw new Error(`${outcome.protocol} request record: ${errors.join('; ')} in ${JSON.stringify(outcome.l7)}`);
    this.outcomes.push(outcome);
  }
  alert(finding: TunnelFinding): void {
    this.alerts.push(finding);
  }
  dlpAlert(alert: DlpAlert): void {
    const errors = l7Errors(alert.protocol, alert.l7);
    if (errors.length > 0) throw new Error(`${alert.protocol} DLP alert: ${errors.join('; ')} in ${JSON.stringify(alert.l7)}`);
    this.dlp.push(structuredClone(alert));
  }
}

/** A filter for one egress connection from 10.0.0.1 to 10.0.0.2:`port`, tunnel detection off. */
export function filterFor(sink: RecordingSink, policy: CompiledPolicy, port: number, dlp?: DlpEngine): ConnectionFilter {
  const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port } };
  const ctx = { facts, policy: () => policy, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const, ...(dlp !== undefined ? { dlp } : {}) };
  return new ConnectionFilter(ctx, sink, policy.decideConnection(facts));
}

/** Cuts `bytes` at the given points. */
export function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    if (p > last) out.push(bytes.subarray(last, p));
    last = Math.max(last, p);
  }
  if (last < bytes.length) out.push(bytes.subarray(last));
  return out;
}
