// Record filters of `sidewall observe` (evaluated in the sidecar, so only matching records cross
// the admin connection). Values within one field are alternatives (OR); fields combine with AND.
import { BlockList, isIP } from 'node:net';
import type { FlowRecord, EndpointRecord } from './types.js';

export interface FlowFilter {
  verdict?: string[];
  protocol?: string[];
  direction?: string[];
  /** An IP ('10.0.0.5'), a CIDR ('10.0.0.0/24', 'fd00::/8'), or 'namespace/pod' ('shop/cart-0'; 'shop/' or 'shop/*' for any pod of the namespace). Matches src or dst. */
  peer?: string[];
  /** The destination's Service: 'namespace/name', or 'namespace/' (or 'namespace/*') for any Service of the namespace. */
  service?: string[];
  /** Rule ids; 'default' matches records decided by the default action (ruleId null). */
  rule?: string[];
  /** Tunnel kinds; 'any' matches every record that carries a tunnel detection. */
  tunnel?: string[];
  /** Record types: connection, request, alert. */
  type?: string[];
}

export class InvalidFlowFilterError extends Error {
  readonly code = 'SW_FLOW_FILTER_INVALID';
  constructor(readonly field: keyof FlowFilter, readonly value: string, detail: string) {
    super(`invalid --${field} value '${value}': ${detail}`);
    this.name = 'InvalidFlowFilterError';
  }
}

export type FlowPredicate = (record: FlowRecord) => boolean;

const VERDICTS = new Set(['allowed', 'denied', 'would-deny']);
const DIRECTIONS = new Set(['ingress', 'egress', 'intra']);
const TYPES = new Set(['connection', 'request', 'alert']);

function checkEnum(field: keyof FlowFilter, values: string[] | undefined, allowed: Set<string>): void {
  for (const value of values ?? []) {
    if (!allowed.has(value)) {
      throw new InvalidFlowFilterError(field, value, `expected one of ${[...allowed].join(', ')}`);
    }
  }
}

interface PeerMatcher {
  ips: BlockList;
  hasIps: boolean;
  workloads: { namespace: string; pod: string | null }[];
}

function compilePeers(peers: string[]): PeerMatcher {
  const matcher: PeerMatcher = { ips: new BlockList(), hasIps: false, workloads: [] };
  for (const peer of peers) {
    const slash = peer.indexOf('/');
    const address = slash === -1 ? peer : peer.slice(0, slash);
    const family = isIP(address);
    if (family !== 0) {
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (slash === -1) {
        matcher.ips.addAddress(address, type);
      } else {
        const prefixText = peer.slice(slash + 1);
        const prefix = Number(prefixText);
        const max = family === 4 ? 32 : 128;
        if (!/^\d+$/.test(prefixText) || prefix > max) {
          throw new InvalidFlowFilterError('peer', peer, `prefix length must be 0..${max}`);
        }
        matcher.ips.addSubnet(address, prefix, type);
      }
      matcher.hasIps = true;
      continue;
    }
    if (slash <= 0) {
      throw new InvalidFlowFilterError('peer', peer, 'expected an IP, a CIDR, or namespace/pod');
    }
    const pod = peer.slice(slash + 1);
    matcher.workloads.push({ namespace: address, pod: pod === '' || pod === '*' ? null : pod });
  }
  return matcher;
}

function compileServices(values: string[]): Array<{ namespace: string; name: string | null }> {
  return values.map((value) => {
    const slash = value.indexOf('/');
    if (slash <= 0) throw new InvalidFlowFilterError('service', value, 'expected namespace/name (or namespace/ for any Service of the namespace)');
    const name = value.slice(slash + 1);
    return { namespace: value.slice(0, slash), name: name === '' || name === '*' ? null : name };
  });
}

function endpointMatches(endpoint: EndpointRecord, peers: PeerMatcher): boolean {
  if (peers.hasIps) {
    const family = isIP(endpoint.ip);
    if (family !== 0 && peers.ips.check(endpoint.ip, family === 4 ? 'ipv4' : 'ipv6')) return true;
  }
  const workload = endpoint.workload;
  if (workload?.namespace === undefined) return false;
  for (const wanted of peers.workloads) {
    if (wanted.namespace === workload.namespace && (wanted.pod === null || wanted.pod === workload.pod)) return true;
  }
  return false;
}

function nonEmpty(values: string[] | undefined): values is string[] {
  return values !== undefined && values.length > 0;
}

/** Compiles a filter; throws InvalidFlowFilterError with the field and value at fault. */
export function compileFlowFilter(filter: FlowFilter): FlowPredicate {
  checkEnum('verdict', filter.verdict, VERDICTS);
  checkEnum('direction', filter.direction, DIRECTIONS);
  checkEnum('type', filter.type, TYPES);
  const verdicts = nonEmpty(filter.verdict) ? new Set(filter.verdict) : null;
  const directions = nonEmpty(filter.direction) ? new Set(filter.direction) : null;
  const types = nonEmpty(filter.type) ? new Set(filter.type) : null;
  const protocols = nonEmpty(filter.protocol) ? new Set(filter.protocol.map((p) => p.toLowerCase())) : null;
  const rules = nonEmpty(filter.rule) ? new Set(filter.rule) : null;
  const tunnels = nonEmpty(filter.tunnel) ? new Set(filter.tunnel) : null;
  const anyTunnel = tunnels?.has('any') === true;
  const peers = nonEmpty(filter.peer) ? compilePeers(filter.peer) : null;
  const services = nonEmpty(filter.service) ? compileServices(filter.service) : null;

  return (record: FlowRecord): boolean => {
    if (verdicts !== null && !verdicts.has(record.verdict)) return false;
    if (directions !== null && !directions.has(record.direction)) return false;
    if (types !== null && !types.has(record.type)) return false;
    if (protocols !== null && !protocols.has(record.protocol.toLowerCase())) return false;
    if (rules !== null && !rules.has(record.ruleId ?? 'default')) return false;
    if (tunnels !== null) {
      if (record.tunnel === undefined) return false;
      if (!anyTunnel && !tunnels.has(record.tunnel.kind)) return false;
    }
    if (peers !== null && !endpointMatches(record.src, peers) && !endpointMatches(record.dst, peers)) return false;
    if (services !== null) {
      const service = record.dst.service;
      if (service === undefined || !services.some((s) => s.namespace === service.namespace && (s.name === null || s.name === service.name))) return false;
    }
    return true;
  };
}
