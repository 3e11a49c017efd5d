// The pod's redirection as iptables-restore input. Pure: builds text from options, touches nothing.
// The chains are our own (SIDEWALL_*) so that `--cleanup` can remove exactly what we added, and
// the whole set is written in one iptables-restore transaction so that no packet ever sees half of it.

export type IpFamily = 4 | 6;

export interface RedirectOptions {
  proxyUid: number;
  proxyGid: number;
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

export const CHAINS = {
  inbound: 'SIDEWALL_INBOUND',
  inboundRedirect: 'SIDEWALL_IN_REDIRECT',
  output: 'SIDEWALL_OUTPUT',
  outboundRedirect: 'SIDEWALL_REDIRECT',
} as const;

/** The rules that jump from the built-in chains into ours; compared textually against iptables-save. */
export const JUMPS: ReadonlyArray<{ chain: string; rule: string }> = [
  { chain: 'PREROUTING', rule: `-A PREROUTING -p tcp -j ${CHAINS.inbound}` },
  { chain: 'OUTPUT', rule: `-A OUTPUT -p tcp -j ${CHAINS.output}` },
];
// Written the way iptables-save prints it, so that presence checks compare equal text.
const DNS_JUMP = { chain: 'OUTPUT', rule: `-A OUTPUT -p udp -m udp --dport 53 -j ${CHAINS.output}` };

export function jumpsFor(options: RedirectOptions): ReadonlyArray<{ chain: string; rule: string }> {
  return options.redirectDns ? [...JUMPS, DNS_JUMP] : JUMPS;
}

export function cidrFamily(cidr: string): IpFamily {
  return cidr.includes(':') ? 6 : 4;
}

/** Body of our chains (declared and filled; in --noflush mode a declared chain is emptied first). */
export function chainRules(options: RedirectOptions, family: IpFamily): string[] {
  const loopback = family === 4 ? '127.0.0.1/32' : '::1/128';
  const lines: string[] = [];
  for (const name of Object.values(CHAINS)) lines.push(`:${name} - [0:0]`);

  // Inbound: everything TCP that arrives at the pod goes to the inbound listener, except the
  // admin port (kubelet probes, Prometheus) and ports the pod opted out.
  lines.push(`-A ${CHAINS.inbound} -p tcp --dport ${options.adminPort} -j RETURN`);
  for (const port of options.excludeInboundPorts) lines.push(`-A ${CHAINS.inbound} -p tcp --dport ${port} -j RETURN`);
  lines.push(`-A ${CHAINS.inbound} -p tcp -j ${CHAINS.inboundRedirect}`);
  lines.push(`-A ${CHAINS.inboundRedirect} -p tcp -j REDIRECT --to-ports ${options.inboundPort}`);

  // Outbound: the proxy's own traffic (uid or gid) must never come back to it.
  lines.push(`-A ${CHAINS.output} -m owner --uid-owner ${options.proxyUid} -j RETURN`);
  lines.push(`-A ${CHAINS.output} -m owner --gid-owner ${options.proxyGid} -j RETURN`);
  if (options.redirectDns) {
    lines.push(`-A ${CHAINS.output} -p udp --dport 53 -j REDIRECT --to-ports ${options.dnsPort}`);
    lines.push(`-A ${CHAINS.output} -p tcp --dport 53 -j REDIRECT --to-ports ${options.dnsPort}`);
  }
  // A container reading the sidecar's own health or metrics over loopback is not traffic to police.
  lines.push(`-A ${CHAINS.output} -o lo -d ${loopback} -p tcp --dport ${options.adminPort} -j RETURN`);
  for (const port of options.excludeOutboundPorts) lines.push(`-A ${CHAINS.output} -p tcp --dport ${port} -j RETURN`);
  for (const cidr of options.excludeOutboundCidrs) {
    if (cidrFamily(cidr) === family) lines.push(`-A ${CHAINS.output} -d ${cidr} -j RETURN`);
  }
  // Everything else, loopback and the pod's own IP included: intra-pod traffic is policed too.
  lines.push(`-A ${CHAINS.output} -p tcp -j ${CHAINS.outboundRedirect}`);
  lines.push(`-A ${CHAINS.outboundRedirect} -p tcp -j REDIRECT --to-ports ${options.outboundPort}`);
  return lines;
}

/** What iptables-save shows of the nat table, reduced to what we compare. */
export interface NatState {
  chains: Set<string>;
  rules: string[];
}

export function parseNatSave(text: string): NatState {
  const chains = new Set<string>();
  const rules: string[] = [];
  let inNat = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inNat = line === '*nat';
    else if (!inNat || line === '' || line.startsWith('#')) continue;
    else if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0] ?? '');
    else if (line.startsWith('-A ')) rules.push(line);
  }
  return { chains, rules };
}

/** One transaction that installs (or refreshes) the rules; jumps are added only where missing. */
export function installScript(options: RedirectOptions, family: IpFamily, current: NatState): string {
  const lines = ['*nat', ...chainRules(options, family)];
  for (const jump of jumpsFor(options)) {
    if (!current.rules.includes(jump.rule)) lines.push(jump.rule);
  }
  // A DNS jump left by an earlier run with --redirect-dns goes when the flag does.
  if (!options.redirectDns && current.rules.includes(DNS_JUMP.rule)) lines.push(DNS_JUMP.rule.replace('-A ', '-D '));
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** One transaction that removes only what we added; null when there is nothing of ours. */
export function cleanupScript(current: NatState): string | null {
  const ours = Object.values(CHAINS).filter((c) => current.chains.has(c));
  const jumps = current.rules.filter((r) => / -j SIDEWALL_[A-Z_]+$/.test(r) && !r.startsWith('-A SIDEWALL_'));
  if (ours.length === 0 && jumps.length === 0) return null;
  const lines = ['*nat'];
  for (const rule of jumps) lines.push(rule.replace(/^-A /, '-D '));
  for (const chain of ours) lines.push(`-F ${chain}`);
  for (const chain of ours) lines.push(`-X ${chain}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}
