// Accept-time admission: builds the connection's facts (addresses and workload identities),
// takes the L3/L4 decision, and gives the connection its L7 filter.
import type { CompiledPolicy, Decision, Direction } from '../policy/index.js';
import type { WorkloadDirectory } from '../identity/workload-directory.js';
import type { TunnelDetection } from '../tunnels/types.js';
import { ConnectionFilter } from './connection-filter.js';
import type { DlpEngine } from '../content/dlp/index.js';
import type { TargetOptions } from '../protocols/http1/request-target.js';
import type { ConnectionFacts, FilterSink, ParseErrorAction, TunnelMode } from './types.js';

export interface GateOptions {
  /** What a parse error does in monitor/learn (`onParseError` in the config). */
  onParseError?: ParseErrorAction;
  /** Counts parser errors by protocol and code. */
  countParserError?: (protocol: string, code: string) => void;
  /** How HTTP request targets are normalised for the rules (`http:` in the config). */
  http?: TargetOptions;
  /** DLP sensors (config `dlp`, rules' `dlp`). */
  dlp?: DlpEngine;
}

export interface Admission {
  facts: ConnectionFacts;
  /** The accept-time decision, or 'needs-l7' when the protocol or requests decide. */
  l4: Decision | 'needs-l7';
  /** Null when the connection is refused at accept. */
  filter: ConnectionFilter | null;
}

export class ConnectionGate {
  constructor(
    private readonly policy: () => CompiledPolicy,
    private readonly workloads: WorkloadDirectory,
    private readonly declaredPorts: Readonly<Record<number, string>>,
    private readonly tunnels: TunnelDetection | null,
    private readonly tunnelMode: (kind: string, protocol: string, port: number) => TunnelMode,
    private readonly options: GateOptions = {},
  ) {}

  admit(direction: Direction, src: { ip: string; port: number }, dst: { ip: string; port: number }, sink: FilterSink): Admission {
    const facts: ConnectionFacts = {
      direction,
      src: this.workloads.describe(src.ip, src.port),
      // An egress call to a cluster IP is a call to that Service's workloads (issue 20); ingress
      // sees the caller's pod IP itself.
      dst: this.workloads.describe(dst.ip, dst.port, direction !== 'ingress'),
    };
    if (this.workloads.stale) facts.identityStale = true;
    const l4 = this.policy().decideConnection(facts);
    if (l4 !== 'needs-l7' && l4.action === 'deny') return { facts, l4, filter: null };
    const declaredProtocol = this.declaredPorts[dst.port];
    const filter = new ConnectionFilter(
      {
        facts,
        policy: this.policy,
        declaredProtocol,
        tunnels: this.tunnels?.forConnection(facts, declaredProtocol) ?? null,
        dnsMonitor: this.tunnels?.dns ?? null,
        tunnelMode: this.tunnelMode,
        ...this.options,
      },
      sink,
      l4,
    );
    return { facts, l4, filter };
  }
}
