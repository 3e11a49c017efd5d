// Turns what the relay and the L7 firewall report into flow record drafts (PRODUCT.md "Flow
// records"). The only place that knows both the connection's and the record's shapes.
import type { ConnectionFilter } from '../enforcement/connection-filter.js';
import type { ConnectionFacts, DlpAlert, RequestOutcome } from '../enforcement/types.js';
import type { FlowRecordDraft } from '../flows/index.js';
import type { Decision } from '../policy/index.js';
import type { ConnectionSummary } from '../net/connection.js';
import type { TunnelFinding } from '../tunnels/types.js';
import type { CaptureGap } from '../capture/tap.js';

const CLOSE_REASONS: Record<ConnectionSummary['reason'], string> = {
  closed: 'fin',
  'client-reset': 'reset',
  'server-reset': 'reset',
  'connect-refused': 'connect-failed',
  'connect-failed': 'connect-failed',
  'connect-timeout': 'connect-timeout',
  'idle-timeout': 'idle-timeout',
  limit: 'limit',
  loop: 'loop',
  'no-original-dst': 'no-original-dst',
  denied: 'denied',
  'internal-error': 'internal-error',
  drain: 'drain',
  'head-timeout': 'head-timeout',
  overload: 'overload',
};

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function endpoints(facts: ConnectionFacts | undefined, summary: ConnectionSummary): Pick<FlowRecordDraft, 'src' | 'dst'> {
  return facts === undefined ? { src: summary.src, dst: summary.dst } : { src: facts.src, dst: facts.dst };
}

export function connectionRecord(summary: ConnectionSummary, facts: ConnectionFacts | undefined, l4: Decision | 'needs-l7' | undefined, filter: ConnectionFilter | null): FlowRecordDraft {
  const decision = filter?.decision ?? (l4 === 'needs-l7' ? undefined : l4);
  // A denial says so; otherwise the L7 layer's reason (parser error, tunnel) beats the socket's.
  const reason = summary.reason === 'denied' ? 'denied' : (filter?.closeReason ?? CLOSE_REASONS[summary.reason]);
  return {
    type: 'connection',
    flowId: summary.flowId,
    direction: summary.direction,
    ...endpoints(facts, summary),
    protocol: filter?.protocol ?? 'tcp',
    ...(filter?.l7 ? { l7: filter.l7 } : {}),
    // A connection cut by a denial (at accept or by a request) says so; otherwise its own decision.
    verdict: summary.reason === 'denied' ? 'denied' : (decision?.verdict ?? 'allowed'),
    ruleId: decision?.ruleId ?? null,
    policy: decision?.policy ?? null,
    bytes: { sent: summary.bytesSent, received: summary.bytesReceived },
    durationMs: round(summary.durationMs),
    reason,
    ...(filter?.tunnel ? { tunnel: tunnelRecord(filter.tunnel, filter.tunnel.blocked) } : {}),
    ...(facts?.identityStale ? { identityStale: true } : {}),
    ...(summary.captures !== undefined ? captureFields({ id: summary.captures[0]!, gap: summary.captureGaps?.get(summary.captures[0]!) }) : {}),
  };
}

/** The capture a record names (its id) and what of the connection it lacks (src/capture/tap.ts). */
export interface CaptureRef {
  id: string;
  gap?: CaptureGap | undefined;
}

function captureFields(ref: CaptureRef | undefined): Pick<FlowRecordDraft, 'capture' | 'captureGap'> {
  if (ref === undefined) return {};
  return ref.gap === undefined ? { capture: ref.id } : { capture: ref.id, captureGap: { fromClient: ref.gap.fromClient, toClient: ref.gap.toClient } };
}

function tunnelRecord(finding: TunnelFinding, blocked: boolean): NonNullable<FlowRecordDraft['tunnel']> {
  const t: NonNullable<FlowRecordDraft['tunnel']> = { kind: finding.kind, blocked, evidence: finding.evidence, confidence: finding.confidence };
  if (finding.expected !== undefined) t.expected = finding.expected;
  if (finding.detected !== undefined) t.detected = finding.detected;
  return t;
}

/** An `alert` record for a tunnel detection on a connection. */
export function alertRecord(flowId: string, facts: ConnectionFacts, protocol: string, finding: TunnelFinding, blocked: boolean, policy: string, capture?: CaptureRef): FlowRecordDraft {
  return {
    type: 'alert',
    flowId,
    direction: facts.direction,
    src: facts.src,
    dst: facts.dst,
    protocol,
    verdict: blocked ? 'denied' : 'allowed',
    ruleId: `tunnel:${finding.kind}`,
    policy,
    tunnel: tunnelRecord(finding, blocked),
    reason: finding.evidence,
    ...(facts.identityStale ? { identityStale: true } : {}),
    ...captureFields(capture),
  };
}

/** An `alert` record for a DLP hit (PRODUCT.md "Content: DLP and capture"). */
export function dlpAlertRecord(flowId: string, facts: ConnectionFacts, alert: DlpAlert, capture?: CaptureRef): FlowRecordDraft {
  const { hit, decision } = alert;
  const dlp: NonNullable<FlowRecordDraft['dlp']> = { sensor: hit.sensor, where: hit.where, offset: hit.offset, sample: hit.sample, blocked: alert.blocked };
  if (hit.field !== undefined) dlp.field = hit.field;
  return {
    type: 'alert',
    flowId,
    direction: facts.direction,
    src: facts.src,
    dst: facts.dst,
    protocol: alert.protocol,
    l7: alert.l7,
    verdict: decision.verdict,
    ruleId: decision.ruleId,
    policy: decision.policy,
    dlp,
    reason: `dlp ${hit.sensor} in ${hit.where}`,
    ...captureFields(capture),
    ...(facts.identityStale ? { identityStale: true } : {}),
  };
}

export function requestRecord(flowId: string, facts: ConnectionFacts, outcome: RequestOutcome): FlowRecordDraft {
  const draft: FlowRecordDraft = {
    type: 'request',
    flowId,
    direction: facts.direction,
    src: facts.src,
    dst: facts.dst,
    protocol: outcome.protocol,
    l7: outcome.l7,
    verdict: outcome.decision.verdict,
    ruleId: outcome.decision.ruleId,
    policy: outcome.decision.policy,
    durationMs: round(outcome.durationMs),
  };
  if (outcome.reason !== undefined) draft.reason = outcome.reason;
  if (facts.identityStale) draft.identityStale = true;
  return draft;
}
