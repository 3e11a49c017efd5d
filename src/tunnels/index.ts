// Tunnel detection: what the firewall checks traffic against besides the rules.
export type { DnsTunnelMonitor, TunnelDetection, TunnelFinding, TunnelInspector, TunnelKind } from './types.js';
export { createTunnelDetection, type TunnelDetectionOptions } from './detection.js';
export { PAYLOAD_BUDGET } from './connection-inspector.js';
export { looksEncoded, SlidingDnsMonitor, splitName } from './dns-tunnel-monitor.js';
export { IcmpTunnelMonitor, type EchoMessage, type EchoVerdict } from './icmp-tunnel.js';
