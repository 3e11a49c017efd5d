// Tunnel detection for one sidecar: per-connection inspectors (protocol verification, SSH
// anywhere, CONNECT, Upgrade, HTTP carriers) that share the sidecar-wide state (learned ports,
// carrier tallies per client→server pair), and the pod-wide DNS tunnelling and ICMP echo tunnel monitors.
import type { ConnectionFacts } from '../enforcement/types.js';
import { ConnectionInspector, type InspectorShared } from './connection-inspector.js';
import { SlidingDnsMonitor } from './dns-tunnel-monitor.js';
import { CarrierTracker } from './http-carrier.js';
import { IcmpTunnelMonitor } from './icmp-tunnel.js';
import { LearnedPorts } from './protocol-verification.js';
import type { TunnelDetection } from './types.js';

export interface TunnelDetectionOptions {
  /** Destination port → declared protocol (`ports:` in the config). */
  ports: Readonly<Record<number, string>>;
  /** Upgrade protocols that are expected (default: websocket, h2c). Anything else is a finding. */
  allowedUpgrades?: readonly string[];
  /**
   * Whether the rules expect a CONNECT to `target` or an Upgrade to it on this connection (e.g.
   * an allow rule naming the CONNECT method or the Upgrade header). Default: CONNECT never is.
   */
  isExpected?: (facts: ConnectionFacts, what: { kind: 'connect' | 'upgrade'; target: string }) => boolean;
  /** Clock for the cross-connection windows, in ms (tests pass their own). */
  now?: () => number;
  /** The pod's namespace and the cluster's DNS domain: the DNS monitor reads the pod's search list from them. */
  namespace?: string;
  clusterDomain?: string;
}

export function createTunnelDetection(options: TunnelDetectionOptions): TunnelDetection {
  const shared: InspectorShared = {
    learned: new LearnedPorts(),
    carriers: new CarrierTracker(options.now ?? Date.now),
    allowedUpgrades: new Set((options.allowedUpgrades ?? ['websocket', 'h2c']).map((u) => u.toLowerCase())),
    isExpected: options.isExpected,
  };
  return {
    forConnection: (facts: ConnectionFacts, declared: string | undefined) => new ConnectionInspector(facts, declared, shared),
    dns: new SlidingDnsMonitor({ namespace: options.namespace, clusterDomain: options.clusterDomain }),
    icmp: new IcmpTunnelMonitor(),
  };
}
