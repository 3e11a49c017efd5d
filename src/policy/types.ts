// Public types of the rules engine. The proxy, the flow exporter, the webhook and the CLI code
// against these names; fields may be added, none renamed.

export type Direction = 'ingress' | 'egress' | 'intra';
export type Mode = 'protect' | 'monitor' | 'learn';
export type RuleAction = 'allow' | 'deny' | 'pass';
export type Tier = 'cluster' | 'workload';

export interface Workload {
  namespace?: string;
  pod?: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
}

/** A Kubernetes Service, as flow records name it (`dst.service`). */
export interface ServiceRef {
  namespace: string;
  name: string;
}

/** One ready endpoint of a Service: its pod IP and, when the identity map knows it, its workload. */
export interface ServiceEndpoint {
  ip: string;
  workload?: Workload;
}

/**
 * The Service behind a cluster-IP destination. `endpoints` (its ready endpoints when the
 * connection was accepted) is a non-enumerable property: rules read it, flow records (JSON) carry
 * only the namespace and name.
 */
export interface ServiceDestination extends ServiceRef {
  readonly endpoints?: readonly ServiceEndpoint[];
}

export interface Endpoint {
  ip: string;
  port: number;
  /**
   * The workload at this address. For a Service's cluster IP: what every ready endpoint has in
   * common (namespace, service account, the labels they all carry; the pod when there is exactly
   * one), and nothing when an endpoint is unknown or there is none.
   */
  workload?: Workload;
  /** Set when the address is a Service's cluster IP (egress and intra destinations). */
  service?: ServiceDestination;
}

export interface L7Facts {
  /**
   * A protocol's facts, under its rule block's key (registry `ruleBlock.key`; the block's matcher
   * reads them: e.g. src/protocols/http1/rule-block.ts HttpFacts under `http`).
   */
  readonly [block: string]: unknown;
  /** The DLP sensors that hit in the request's content so far (rules' `dlp` matchers read it). */
  dlp?: { sensors: readonly string[] };
}

export interface FlowFacts {
  direction: Direction;
  src: Endpoint;
  dst: Endpoint;
  /** The detected (or port-configured) application protocol, e.g. 'http', 'grpc', 'tls'. */
  protocol?: string;
  l7?: L7Facts;
}

/**
 * A non-TCP flow, seen at its first packet (the non-TCP guard). `protocol` is 'udp', 'icmp'
 * (ICMP or ICMPv6) or 'ip-N' for any other IP protocol; ports are UDP's, 0 otherwise.
 */
export interface DatagramFacts {
  direction: Direction;
  src: Endpoint;
  dst: Endpoint;
  protocol: string;
}

export interface Decision {
  /** What enforcement does (monitor and learn: always 'allow'). */
  action: 'allow' | 'deny';
  verdict: 'allowed' | 'denied' | 'would-deny';
  /** The deciding rule's id, or 'default' for the defaultAction. */
  ruleId: string;
  /** Short hash (12 hex chars of sha256) of the rule set in force. */
  policy: string;
  log: boolean;
  /** Which tier decided: 'cluster', 'workload', or 'default'. */
  tier: Tier | 'default';
  /** The deciding rule says `capture: true`: the flows it decides are captured (src/capture). */
  capture?: true;
  /** The deciding rule's `dlp` list, when it has one ([]: DLP off for what it decides). */
  dlp?: readonly string[];
}

export interface CompiledPolicy {
  readonly hash: string;
  readonly mode: Mode;
  readonly defaultAction: 'allow' | 'deny';
  readonly ruleCount: number;
  /** Some rule says `capture: true` (connections then keep a capture pre-buffer from their first byte). */
  readonly hasCaptureRules?: boolean;
  /** Every DLP sensor a rule names (`dlp: [...]`): scanned so those rules can match. */
  readonly dlpSensors: readonly string[];
  /** Full evaluation (L3/L4 + protocol + L7). Decisions are shared frozen objects: do not mutate. */
  decide(facts: FlowFacts): Decision;
  /**
   * At accept time, before any byte is read: a Decision when L3/L4 facts already decide, or
   * 'needs-l7' when the first rule whose L3/L4 matchers match has protocol or L7 matchers.
   */
  decideConnection(facts: Omit<FlowFacts, 'protocol' | 'l7'>): Decision | 'needs-l7';
  /**
   * Once the protocol is known, before the first request: a Decision when L3/L4 and protocol
   * facts decide, or 'needs-l7' when the first matching rule has an L7 block (then call
   * `decide` per request with its L7 facts).
   */
  decideProtocol(facts: Omit<FlowFacts, 'l7'>): Decision | 'needs-l7';
  /**
   * A flow whose protocol could not be told (detection failed or timed out), failing closed:
   * rules are read in order; a rule without protocol/L7 matchers decides as usual, a `deny` rule
   * with protocol or L7 matchers decides too (its protocol might be what the flow speaks, so we
   * cannot say it does not apply), `allow`/`pass` rules with them are skipped (nothing shows that
   * they apply); then the default.
   */
  decideUndetected(facts: Omit<FlowFacts, 'protocol' | 'l7'>): Decision;
  /**
   * A non-TCP flow (UDP other than DNS, ICMP, any other IP protocol). Only rules naming that
   * protocol (`protocol: udp` / `icmp`) and deny/pass rules naming no protocol apply; when none
   * decides, the flow is denied (ruleId 'default:non-tcp'), whatever defaultAction says.
   */
  decideDatagram(facts: DatagramFacts): Decision;
}

export interface RuleIssue {
  /** The file or annotation the rules came from. */
  source: string;
  /** The rule's position in its list (0-based), or null for problems with the document itself. */
  index: number | null;
  id?: string;
  /** Dotted path inside the rule, e.g. 'peer.cidr[1]'; '' for the rule or document itself. */
  field: string;
  message: string;
}
