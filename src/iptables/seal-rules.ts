// The non-TCP guard's netfilter rules (README "Non-TCP traffic"), as iptables-restore input for the
// mangle and filter tables. Pure: builds text from options, touches nothing. Written in the same
// transaction as the nat redirection (apply.ts), in chains of our own so --cleanup removes exactly
// what we added.
//
// Mechanism: the first packet of every new non-TCP flow, in and out, goes to NFQUEUE (no
// --queue-bypass: with no sidecar bound to the queue the kernel drops it, so the pod fails closed).
// The sidecar decides it with the compiled rules and accepts it with our mark bit set; a filter
// rule copies that bit into the flow's conntrack mark, and every later packet of the flow, both
// ways, passes on that conntrack mark — so the cost is one verdict per flow, not per packet.
// Replies (ESTABLISHED) and ICMP errors about allowed flows (RELATED) pass on conntrack state.
//
// Why mangle for the queue and filter for the mark copy: a verdict resumes the packet at the next
// hook, not at the next rule, so the copy must sit in a later hook (filter runs after mangle in
// OUTPUT and INPUT). The packet mark bit is cleared on entry because an app with CAP_NET_RAW (root
// in a container keeps it by default) can set any SO_MARK on its socket: a forged bit on a packet
// that leaves mangle without a verdict (DNS on its way to the listener, a reply) would otherwise be
// copied into its conntrack entry. Only the conntrack mark (CAP_NET_ADMIN to set) proves a verdict.
//
// ICMP echo is the exception to "one verdict per flow": every echo request and reply of an
// accepted flow is queued again, with ECHO_MARK set so the sidecar knows conntrack accepted the
// flow (it inspects the payloads for ICMP tunnels, src/tunnels/icmp-tunnel.ts, and records the
// flow once). Echo is the protocol ping tunnels ride; at ping rates the cost is small, and a
// flood beyond the queue's length is dropped by the kernel (fail closed). The bit is cleared on
// entry like the seal bit, so an app cannot make a new flow pass as an accepted one.
import { hexMark, type IpFamily, type RedirectOptions, type TableState } from './rules.js';

/** The packet/conntrack mark bit of an accepted non-TCP flow. Clear of the proxy's socket mark 0x539 and kube-proxy's 0x4000/0x8000. */
export const SEAL_MARK = 0x100000;
/** Set by our rules on an echo message of an accepted flow before it is queued again (see above). */
export const ECHO_MARK = 0x200000;
/**
 * The conntrack mark bit of a flow the proxy opened itself (its upstream DNS queries): set by its
 * first packet, which carries the proxy's socket mark and uid. A later packet of such a flow from
 * anyone else is dropped: the DNS proxy closes each query's socket after the answer, and an app
 * that bound the freed port (read from /proc/net/udp, no capability needed) and sent to the same
 * resolver rode the proxy's conntrack entry — ESTABLISHED, so neither this guard nor the nat
 * table's redirection to the DNS listener saw it.
 */
export const PROXY_FLOW_MARK = 0x400000;
/** Default NFQUEUE number (the pod's network namespace has its own queues). */
export const DEFAULT_SEAL_QUEUE = 1337;

export const SEAL_CHAINS = {
  /** mangle: decide what leaves (and what goes over loopback: intra-pod). */
  output: 'SIDEWALL_SEAL_OUT',
  /** mangle: decide what arrives from outside the pod. */
  input: 'SIDEWALL_SEAL_IN',
  /** filter: remember an accepted flow in its conntrack mark. */
  keep: 'SIDEWALL_SEAL_KEEP',
} as const;

export interface SealOptions {
  /** The NFQUEUE number; null: no non-TCP guard (only for `sidewall init --non-tcp allow`). */
  queue: number | null;
}

const MARK = `0x${SEAL_MARK.toString(16)}`;

/** The jumps from the built-in chains, as iptables-save prints them (compared textually). */
export const SEAL_JUMPS: Readonly<Record<'mangle' | 'filter', ReadonlyArray<{ chain: string; rule: string }>>> = {
  mangle: [
    { chain: 'OUTPUT', rule: `-A OUTPUT -j ${SEAL_CHAINS.output}` },
    { chain: 'INPUT', rule: `-A INPUT -j ${SEAL_CHAINS.input}` },
  ],
  filter: [
    { chain: 'OUTPUT', rule: `-A OUTPUT -j ${SEAL_CHAINS.keep}` },
    { chain: 'INPUT', rule: `-A INPUT -j ${SEAL_CHAINS.keep}` },
  ],
};

/**
 * ICMPv6 the pod's kernel must exchange to have a network at all (RFC 4861 neighbour and router
 * discovery, hop limit 255; RFC 3810 MLD, hop limit 1): conntrack does not track them, and the
 * hop limits keep them to the link, so they cannot carry anything past the node.
 */
const ND_TYPES = [133, 134, 135, 136, 137];
const MLD_TYPES = [130, 131, 132, 143];

const ECHO = `0x${ECHO_MARK.toString(16)}`;
const PROXY_FLOW = `0x${PROXY_FLOW_MARK.toString(16)}`;

/** Mark bits we did not set are forged (SO_MARK with CAP_NET_RAW): cleared; TCP is the nat redirection's (and the proxy's) business. */
function entry(chain: string): string[] {
  return [
    `-A ${chain} -m mark --mark ${MARK}/${MARK} -j MARK --set-xmark 0x0/${MARK}`,
    `-A ${chain} -m mark --mark ${ECHO}/${ECHO} -j MARK --set-xmark 0x0/${ECHO}`,
    `-A ${chain} -p tcp -j RETURN`,
  ];
}

/** Every echo request and reply of a flow the sidecar accepted goes to the queue again, marked. */
function echoes(chain: string, family: IpFamily, queue: string): string[] {
  const types = family === 4 ? ['-p icmp -m icmp --icmp-type 8', '-p icmp -m icmp --icmp-type 0'] : ['-p ipv6-icmp -m icmp6 --icmpv6-type 128', '-p ipv6-icmp -m icmp6 --icmpv6-type 129'];
  return [
    ...types.map((t) => `-A ${chain} ${t} -m connmark --mark ${MARK}/${MARK} -j MARK --set-xmark ${ECHO}/${ECHO}`),
    `-A ${chain} -m mark --mark ${ECHO}/${ECHO} ${queue}`,
  ];
}

/** A flow the sidecar accepted (its conntrack mark), replies, and ICMP errors about such flows. */
function accepted(chain: string): string[] {
  return [`-A ${chain} -m connmark --mark ${MARK}/${MARK} -j RETURN`, `-A ${chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`];
}

function icmpv6Exemptions(chain: string, family: IpFamily): string[] {
  if (family !== 6) return [];
  return [
    ...ND_TYPES.map((t) => `-A ${chain} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -m hl --hl-eq 255 -j RETURN`),
    ...MLD_TYPES.map((t) => `-A ${chain} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -m hl --hl-eq 1 -j RETURN`),
  ];
}

/** The `*mangle` and `*filter` sections (each ending in COMMIT), or [] when the guard is off. */
export function sealScript(options: RedirectOptions, seal: SealOptions, family: IpFamily, current: { mangle: TableState; filter: TableState }): string[] {
  if (seal.queue === null) return sealCleanupLines(current);
  const out = SEAL_CHAINS.output;
  const inp = SEAL_CHAINS.input;
  const queue = `-j NFQUEUE --queue-num ${seal.queue}`;
  const mangle = ['*mangle', `:${out} - [0:0]`, `:${inp} - [0:0]`];
  // The proxy's identity is the nat table's: the socket mark (CAP_NET_ADMIN to set) and its uid
  // together; a process that merely runs as uid/gid 1337 is queued like any app.
  const proxy = `-m mark --mark ${hexMark(options.proxyMark)} -m owner --uid-owner ${options.proxyUid}`;
  const proxyFlow = `-m connmark --mark ${PROXY_FLOW}/${PROXY_FLOW}`;
  mangle.push(...entry(out), ...echoes(out, family, queue));
  // A flow the proxy opened is the proxy's alone (PROXY_FLOW_MARK), before conntrack state counts.
  mangle.push(`-A ${out} ${proxyFlow} ${proxy} -j RETURN`, `-A ${out} ${proxyFlow} -j DROP`);
  mangle.push(...accepted(out));
  // The proxy's own datagrams (DNS to the real resolver) are what the sidecar decided already;
  // their flow is marked as the proxy's.
  mangle.push(`-A ${out} ${proxy} -j CONNMARK --set-xmark ${PROXY_FLOW}/${PROXY_FLOW}`, `-A ${out} ${proxy} -j RETURN`);
  // UDP port 53 is redirected to the DNS listener by the nat table right after this hook.
  if (options.redirectDns) mangle.push(`-A ${out} -p udp -m udp --dport 53 -j RETURN`);
  // Opted out by the pod's annotation, for every protocol (as the nat table does for TCP).
  for (const cidr of options.excludeOutboundCidrs) {
    if (cidr.includes(':') === (family === 6)) mangle.push(`-A ${out} -d ${cidr} -j RETURN`);
  }
  mangle.push(...icmpv6Exemptions(out, family));
  mangle.push(`-A ${out} ${queue}`);

  // What arrives over loopback left through OUTPUT above and was decided there (intra-pod).
  mangle.push(...entry(inp), `-A ${inp} -i lo -j RETURN`, ...echoes(inp, family, queue), ...accepted(inp));
  mangle.push(...icmpv6Exemptions(inp, family));
  mangle.push(`-A ${inp} ${queue}`);
  for (const jump of SEAL_JUMPS.mangle) if (!current.mangle.rules.includes(jump.rule)) mangle.push(jump.rule);
  mangle.push('COMMIT');

  const keep = SEAL_CHAINS.keep;
  const filter = ['*filter', `:${keep} - [0:0]`];
  filter.push(`-A ${keep} -m mark --mark ${MARK}/${MARK} -j CONNMARK --set-xmark ${MARK}/${MARK}`);
  for (const jump of SEAL_JUMPS.filter) if (!current.filter.rules.includes(jump.rule)) filter.push(jump.rule);
  filter.push('COMMIT');
  return [...mangle, ...filter];
}

function cleanupTable(table: 'mangle' | 'filter', current: TableState): string[] {
  const ours: string[] = Object.values(SEAL_CHAINS).filter((c) => current.chains.has(c));
  const jumps = current.rules.filter((r) => / -j SIDEWALL_SEAL_[A-Z_]+$/.test(r) && !r.startsWith('-A SIDEWALL_'));
  if (ours.length === 0 && jumps.length === 0) return [];
  return [`*${table}`, ...jumps.map((r) => r.replace(/^-A /, '-D ')), ...ours.map((c) => `-F ${c}`), ...ours.map((c) => `-X ${c}`), 'COMMIT'];
}

/** Removes only what we added to mangle and filter; [] when there is nothing of ours. */
export function sealCleanupLines(current: { mangle: TableState; filter: TableState }): string[] {
  return [...cleanupTable('mangle', current.mangle), ...cleanupTable('filter', current.filter)];
}
