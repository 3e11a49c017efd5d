// Flow record types: the shape fixed by /work/shared/PRODUCT.md ("Flow records") and by
// src/schema/flow-record.ts (written to schema/flow-record.schema.json by the build; each
// protocol's l7 fields come from its folder's recordFields). Change them together.

export type FlowType = 'connection' | 'request' | 'alert';
export type FlowDirection = 'ingress' | 'egress' | 'intra';
export type FlowVerdict = 'allowed' | 'denied' | 'would-deny';

/** A Kubernetes workload identity, filled where the sidecar knows it. */
export interface WorkloadRecord {
  namespace?: string;
  pod?: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
}

export interface EndpointRecord {
  ip: string;
  port: number;
  /** For a Service's cluster IP: what its ready endpoints share (the pod when there is one). */
  workload?: WorkloadRecord;
  /** The Service whose cluster IP this is (destinations of egress and intra flows). */
  service?: { namespace: string; name: string };
}

/** The pod the sidecar protects. */
export interface PodRef {
  namespace: string;
  name: string;
  ip?: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
}

export interface TunnelRecord {
  /** e.g. 'ssh', 'http-connect', 'http-upgrade', 'dns-tunnel', 'protocol-mismatch'. */
  kind: string;
  /** What the traffic was expected to be (the port's protocol, or what it claimed to be). */
  expected?: string;
  /** What it was found to be. */
  detected?: string;
  /** Whether the detection blocked the traffic (config `tunnels: block`). */
  blocked?: boolean;
  /** What gave it away: the bytes (escaped, short) or the fields and numbers. */
  evidence: string;
  /** 0..1. */
  confidence: number;
}

export interface DlpRecord {
  /** The sensor that hit (pci-pan, us-ssn, ..., a config pattern name, or undecodable). */
  sensor: string;
  where: 'request-body' | 'response-body' | 'header' | 'query';
  /** Byte offset in the decoded body (or in the header value / query string). */
  offset: number;
  /** Masked: `4111 **** **** 1111`; never the value. */
  sample: string;
  /** The header's name, for `header` hits. */
  field?: string;
  /** The exchange was cut (403 to the client and the server reset, or the response reset). */
  blocked: boolean;
}

export interface FlowRecordDraft {
  type: FlowType;
  flowId: string;
  direction: FlowDirection;
  src: EndpointRecord;
  dst: EndpointRecord;
  protocol: string;
  l7?: Record<string, unknown>;
  verdict: FlowVerdict;
  ruleId: string | null;
  policy: string | null;
  tunnel?: TunnelRecord;
  /** A DLP hit (on `alert` records): never the value, only a masked sample. */
  dlp?: DlpRecord;
  /**
   * sent: bytes from src (the side that opened the connection) to dst; received: from dst to src.
   * Cumulative for the connection (periodic records carry the running totals).
   */
  bytes?: { sent: number; received: number };
  durationMs?: number;
  /**
   * Close reason for a final connection record: 'fin', 'reset', 'idle-timeout', 'connect-failed',
   * 'connect-timeout', 'limit', 'loop', 'drain', or a parser error code. For an alert: why.
   */
  reason?: string;
  /** Non-TCP flows leaving the pod: the uid owning the sending socket (from the queued packet). */
  uid?: number;
  /** The workload identities in src/dst may be out of date (the identity controller was unreachable). */
  identityStale?: boolean;
  /** The packet capture (src/capture) holding this connection: an alert's own capture, or the first of the connection's. */
  capture?: string;
  /**
   * Bytes of the connection that capture lacks: sent after its pre-buffer (capture.preBufferBytes)
   * filled and before the capture began (src/capture/tap.ts). Absent: the capture holds them all.
   */
  captureGap?: { fromClient: number; toClient: number };
  /** True on the periodic records of a connection that is still open; absent on the final one. */
  interim?: boolean;
  /**
   * On a drift alert ("new behaviour" in protect mode): the workload rule that would allow what
   * was denied, as an object and as YAML (one list item) ready to append to sidewall.io/rules.
   */
  suggestion?: SuggestedRule;
}

/** A rule of the workload tier (src/policy/README.md) suggested by the learning mode. */
export interface SuggestedRule {
  rule: { id: string; action: string; [matcher: string]: unknown };
  yaml: string;
}

export interface FlowRecord extends FlowRecordDraft {
  /** RFC 3339, UTC, nanoseconds: 2026-11-23T15:10:54.123456789Z. */
  time: string;
  /** Per sidecar, strictly increasing from 1; a gap is the number of records lost before it. */
  seq: number;
  pod: PodRef;
}
