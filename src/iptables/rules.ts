// The pod's redirection as iptables-restore input. Pure: builds text from options, touches nothing.
// The chains are our own (SIDEWALL_*) so that `--cleanup` can remove exactly what we added, and
// the whole set is written in one iptables-restore transaction per family so that no packet ever
// sees half of it.
//
// The proxy's identity is a socket mark (SO_MARK, default 0x539) AND its uid: setting a mark needs
// CAP_NET_ADMIN (or CAP_NET_RAW) in the pod's network namespace, which the webhook never lets an
// app container have, while a uid or gid alone is something a root app takes with setgid(2). Two
// tables use it:
// - nat: the proxy's own dials (marked, uid 1337) are not redirected; everything else is, a
//   process running as uid 1337 or gid 1337 without the mark included.
// - filter: a NEW connection (or DNS datagram) reaches the listener ports only when the socket
//   that would receive it carries the mark (`-m socket --restore-skmark`), so an app that binds
//   15001/15006 after the sidecar died receives nothing.

export type IpFamily = 4 | 6;

/** 1337, the proxy's uid, as a mark: the default of `--proxy-mark` and of the config's proxy.socketMark. */
export const DEFAULT_PROXY_MARK = 0x539;

export interface RedirectOptions {
  proxyUid: number;
  /** Kept for the flag's compatibility; no longer exempts anything (a root app can setgid(2)). */
  proxyGid: number;
  /** SO_MARK of the proxy's sockets (config `proxy.socketMark`); 0x539 by default. */
  proxyMark: number;
  inboundPort: number;
  outboundPort: number;
  adminPort: number;
  dnsPort: number;
  redirectDns: boolean;
  excludeInboundPorts: number[];
  excludeOutboundPorts: number[];
  /** CIDRs of both families; each family's table gets its own. */
  excludeOutboundCidrs: string[];
}

export type Table = 'nat' | 'filter';

export const CHAINS = {
  inbound: 'SIDEWALL_INBOUND',
  inboundRedirect: 'SIDEWALL_IN_REDIRECT',
  output: 'SIDEWALL_OUTPUT',
  outboundRedirect: 'SIDEWALL_REDIRECT',
} as const;

export const FILTER_CHAINS = {
  /** Delivers NEW traffic for the listener ports only to sockets bearing the proxy's mark. */
  listen: 'SIDEWALL_LISTEN',
} as const;

const TABLE_CHAINS: Record<Table, readonly string[]> = {
  nat: Object.values(CHAINS),
  filter: Object.values(FILTER_CHAINS),
};

export interface Jump {
  table: Table;
  chain: string;
  rule: string;
}

/** The nat rules that jump from the built-in chains into ours; compared textually against iptables-save. */
export const JUMPS: ReadonlyArray<{ chain: string; rule: string }> = [
  { chain: 'PREROUTING', rule: `-A PREROUTING -p tcp -j ${CHAINS.inbound}` },
  { chain: 'OUTPUT', rule: `-A OUTPUT -p tcp -j ${CHAINS.output}` },
];
// Written the way iptables-save prints it, so that presence checks compare equal text.
const DNS_JUMP = { chain: 'OUTPUT', rule: `-A OUTPUT -p udp -m udp --dport 53 -j ${CHAINS.output}` };

export function hexMark(mark: number): string {
  return `0x${mark.toString(16)}`;
}

/** The ports only the proxy may receive NEW traffic on: its listeners and the admin port. */
export function guardedTcpPorts(options: RedirectOptions): number[] {
  return [...new Set([options.adminPort, options.outboundPort, options.inboundPort, options.dnsPort])].sort((a, b) => a - b);
}

/** Every jump from a built-in chain into ours, for both tables, as iptables-save prints them. */
export function jumpsFor(options: RedirectOptions): Jump[] {
  const nat: Jump[] = (options.redirectDns ? [...JUMPS, DNS_JUMP] : JUMPS).map((j) => ({ table: 'nat', ...j }));
  const listen = FILTER_CHAINS.listen;
  return [
    ...nat,
    { table: 'filter', chain: 'INPUT', rule: `-A INPUT -p tcp -m multiport --dports ${guardedTcpPorts(options).join(',')} -m conntrack --ctstate NEW -j ${listen}` },
    { table: 'filter', chain: 'INPUT', rule: `-A INPUT -p udp -m udp --dport ${options.dnsPort} -m conntrack --ctstate NEW -j ${listen}` },
  ];
}

export function cidrFamily(cidr: string): IpFamily {
  return cidr.includes(':') ? 6 : 4;
}

/** Body of our nat chains (declared and filled; in --noflush mode a declared chain is emptied first). */
export function chainRules(options: RedirectOptions, family: IpFamily): string[] {
  const lines: string[] = [];
  for (const name of Object.values(CHAINS)) lines.push(`:${name} - [0:0]`);

  // Inbound: everything TCP that arrives at the pod goes to the inbound listener, except the
  // admin port (kubelet probes, Prometheus) and ports the pod opted out.
  lines.push(`-A ${CHAINS.inbound} -p tcp --dport ${options.adminPort} -j RETURN`);
  for (const port of options.excludeInboundPorts) lines.push(`-A ${CHAINS.inbound} -p tcp --dport ${port} -j RETURN`);
  lines.push(`-A ${CHAINS.inbound} -p tcp -j ${CHAINS.inboundRedirect}`);
  lines.push(`-A ${CHAINS.inboundRedirect} -p tcp -j REDIRECT --to-ports ${options.inboundPort}`);

  // Outbound: the proxy's own dials must never come back to it. Both the mark (which needs
  // CAP_NET_ADMIN) and the uid, so that an app would need two failures of the webhook's guard.
  lines.push(`-A ${CHAINS.output} -m mark --mark ${hexMark(options.proxyMark)} -m owner --uid-owner ${options.proxyUid} -j RETURN`);
  if (options.redirectDns) {
    lines.push(`-A ${CHAINS.output} -p udp --dport 53 -j REDIRECT --to-ports ${options.dnsPort}`);
    lines.push(`-A ${CHAINS.output} -p tcp --dport 53 -j REDIRECT --to-ports ${options.dnsPort}`);
  }
  // A container reading the sidecar's own admin port (loopback or the pod's IP) is not traffic to
  // police, and must reach it from its own socket: the admin server decides who may read what by
  // the client socket's owner (src/admin/access.ts), which a relay through the proxy would hide.
  lines.push(`-A ${CHAINS.output} -p tcp -m addrtype --dst-type LOCAL --dport ${options.adminPort} -j RETURN`);
  for (const port of options.excludeOutboundPorts) lines.push(`-A ${CHAINS.output} -p tcp --dport ${port} -j RETURN`);
  for (const cidr of options.excludeOutboundCidrs) {
    if (cidrFamily(cidr) === family) lines.push(`-A ${CHAINS.output} -d ${cidr} -j RETURN`);
  }
  // The pod's own IPv6 link-local address: REDIRECT would send it to ::1, which the app's socket,
  // bound to the interface by the address's scope, cannot reach (the kernel drops it). Changing
  // only the port keeps it on that interface and still brings it to our listener (on ::).
  if (family === 6) lines.push(`-A ${CHAINS.output} -d fe80::/10 -p tcp -m addrtype --dst-type LOCAL -j DNAT --to-destination :${options.outboundPort}`);
  // Everything else, loopback and the pod's own IPs included: intra-pod traffic is policed too.
  lines.push(`-A ${CHAINS.output} -p tcp -j ${CHAINS.outboundRedirect}`);
  lines.push(`-A ${CHAINS.outboundRedirect} -p tcp -j REDIRECT --to-ports ${options.outboundPort}`);
  return lines;
}

/**
 * Body of our filter chain. `-m socket` finds the socket the kernel will deliver the packet to
 * (after REDIRECT, so the listener itself); `--nowildcard` makes it consider listeners bound to
 * 0.0.0.0/::, and `--restore-skmark` copies that socket's mark to the packet for `-m mark`.
 * Everything else is dropped: with the sidecar down or its ports taken, the pod is cut off rather
 * than served by whoever bound the port (a dropped SYN is retried, and lands once the sidecar is back).
 */
export function filterChainRules(options: RedirectOptions): string[] {
  const listen = FILTER_CHAINS.listen;
  return [
    `:${listen} - [0:0]`,
    // `--restore-skmark` copies a mark only from a full socket. A SYN whose 4-tuple matches a
    // TIME_WAIT socket (the proxy closed that connection first, and the client reuses the port:
    // routine under connection churn) finds the TIME_WAIT entry, which has no mark to copy; the
    // kernel would recycle it into the listener. So the packet gets a sentinel bit first: still
    // there after the lookup means "found a socket that is not a full one", and it passes. Without
    // this, such SYNs were dropped and each stalled its client for seconds (ab-bench connclose).
    `-A ${listen} -j MARK --set-xmark ${hexMark(LISTEN_SENTINEL)}/${hexMark(LISTEN_SENTINEL)}`,
    `-A ${listen} -m socket --nowildcard --restore-skmark -m mark --mark ${hexMark(options.proxyMark)} -j RETURN`,
    `-A ${listen} -m socket --nowildcard -m mark --mark ${hexMark(LISTEN_SENTINEL)}/${hexMark(LISTEN_SENTINEL)} -j RETURN`,
    `-A ${listen} -j DROP`,
  ];
}

/** Packet mark bit the listener guard sets before its socket lookup (clear of 0x539, kube-proxy's 0x4000/0x8000 and the non-TCP bit 0x100000). */
export const LISTEN_SENTINEL = 0x80000000;

/** What iptables-save shows of one table, reduced to what we compare. */
export interface TableState {
  chains: Set<string>;
  rules: string[];
}

export function parseSave(text: string, table: Table | 'mangle'): TableState {
  const chains = new Set<string>();
  const rules: string[] = [];
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inTable = line === `*${table}`;
    else if (!inTable || line === '' || line.startsWith('#')) continue;
    else if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0] ?? '');
    else if (line.startsWith('-A ')) rules.push(line);
  }
  return { chains, rules };
}

export type CurrentTables = Record<Table, TableState>;

export function emptyTables(): CurrentTables {
  return { nat: { chains: new Set(), rules: [] }, filter: { chains: new Set(), rules: [] } };
}

function isOurJump(rule: string, table: Table): boolean {
  const m = / -j (SIDEWALL_[A-Z_]+)$/.exec(rule);
  return m !== null && !rule.startsWith('-A SIDEWALL_') && TABLE_CHAINS[table].includes(m[1]!);
}

/**
 * One transaction that installs (or refreshes) the rules of both tables; jumps are added only
 * where missing, and jumps of an earlier run that no longer apply (other ports, no --redirect-dns)
 * are removed.
 */
export function installScript(options: RedirectOptions, family: IpFamily, tables: CurrentTables): string {
  const jumps = jumpsFor(options);
  const lines: string[] = [];
  for (const table of ['nat', 'filter'] as const) {
    lines.push(`*${table}`, ...(table === 'nat' ? chainRules(options, family) : filterChainRules(options)));
    const wanted = jumps.filter((j) => j.table === table);
    for (const jump of wanted) if (!tables[table].rules.includes(jump.rule)) lines.push(jump.rule);
    for (const rule of tables[table].rules) {
      if (isOurJump(rule, table) && !wanted.some((j) => j.rule === rule)) lines.push(rule.replace(/^-A /, '-D '));
    }
    lines.push('COMMIT');
  }
  lines.push('');
  return lines.join('\n');
}

/** One transaction that removes only what we added (both tables); null when there is nothing of ours. */
export function cleanupScript(tables: CurrentTables): string | null {
  const lines: string[] = [];
  for (const table of ['nat', 'filter'] as const) {
    const ours = TABLE_CHAINS[table].filter((c) => tables[table].chains.has(c));
    const jumps = tables[table].rules.filter((r) => isOurJump(r, table));
    if (ours.length === 0 && jumps.length === 0) continue;
    lines.push(`*${table}`);
    for (const rule of jumps) lines.push(rule.replace(/^-A /, '-D '));
    for (const chain of ours) lines.push(`-F ${chain}`);
    for (const chain of ours) lines.push(`-X ${chain}`);
    lines.push('COMMIT');
  }
  if (lines.length === 0) return null;
  lines.push('');
  return lines.join('\n');
}
