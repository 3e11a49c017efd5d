// `sidewall init`: writes the pod's redirection (run by the sidewall-init container).
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { applyPlan, IptablesError, plan, planWithoutReading, resolveBackend, type InitRequest } from '../iptables/apply.js';
import type { Backend } from '../iptables/backend.js';
import { DEFAULT_PROXY_MARK, type IpFamily } from '../iptables/rules.js';
import { DEFAULT_SEAL_QUEUE } from '../iptables/seal-rules.js';
import { parseCidrList, parseId, parseMark, parsePort, parsePortList, UsageError } from './flags.js';

const HELP = `usage: sidewall init [flags]

Redirects the pod's TCP traffic to the sidecar, and queues the first packet of every other flow
(UDP other than DNS, ICMP, other IP protocols) to it over NFQUEUE, with iptables-restore (one
atomic transaction per IP family, nat, mangle and filter tables, in chains named SIDEWALL_*).
Idempotent.

The proxy is recognised by its socket mark AND its uid: only sockets marked --proxy-mark (which
needs CAP_NET_ADMIN, never granted to app containers) and owned by --proxy-uid leave unredirected,
and NEW connections to the listener and admin ports reach only sockets bearing the mark. A process
that merely runs as uid/gid 1337 is redirected and policed like any app.

  --proxy-uid N                 uid of the proxy; its marked sockets are not redirected (default 1337)
  --proxy-gid N                 accepted for compatibility; exempts nothing (a root app can setgid)
  --proxy-mark M                SO_MARK of the proxy's sockets, decimal or 0x-hex (default 0x539;
                                must equal the sidecar's proxy.socketMark)
  --inbound-port P              inbound listener (default 15006)
  --outbound-port P             outbound listener (default 15001)
  --admin-port P                admin port, not redirected (default 15000)
  --dns-port P                  DNS listener (default 15053)
  --redirect-dns                also send UDP and TCP port 53 to the DNS listener
  --exclude-inbound-ports LIST  comma-separated ports reaching the pod directly
  --exclude-outbound-ports LIST comma-separated destination ports leaving directly
  --exclude-outbound-cidrs LIST comma-separated CIDRs (IPv4 or IPv6) leaving directly
  --nfqueue N                   NFQUEUE number of the non-TCP guard (default 1337; the proxy's
                                proxy.nfqueue must match)
  --non-tcp queue|allow         queue (default): non-TCP flows are decided by the sidecar, and
                                dropped while it is not running; allow: not policed at all (unsafe)
  --backend auto|nft|legacy     netfilter back end (default auto: the one the node uses)
  --ipv6 auto|on|off            also write ip6tables (default auto: when the kernel has IPv6)
  --dry-run                     print the iptables-restore input instead of applying it
  --cleanup                     remove the SIDEWALL_* chains and the jumps into them
`;

function parse(args: string[]): { request: InitRequest; dryRun: boolean } | 'help' {
  const { values } = parseArgs({
    args,
    options: {
      'proxy-uid': { type: 'string' },
      'proxy-gid': { type: 'string' },
      'proxy-mark': { type: 'string' },
      'inbound-port': { type: 'string' },
      'outbound-port': { type: 'string' },
      'admin-port': { type: 'string' },
      'dns-port': { type: 'string' },
      nfqueue: { type: 'string' },
      'non-tcp': { type: 'string', default: 'queue' },
      'redirect-dns': { type: 'boolean', default: false },
      'exclude-inbound-ports': { type: 'string' },
      'exclude-outbound-ports': { type: 'string' },
      'exclude-outbound-cidrs': { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      ipv6: { type: 'string', default: 'auto' },
      'dry-run': { type: 'boolean', default: false },
      cleanup: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const backend = values.backend as string;
  if (!['auto', 'nft', 'legacy'].includes(backend)) throw new UsageError(`--backend: '${backend}' is not auto, nft or legacy`);
  const ipv6 = values.ipv6 as string;
  if (!['auto', 'on', 'off'].includes(ipv6)) throw new UsageError(`--ipv6: '${ipv6}' is not auto, on or off`);
  const nonTcp = values['non-tcp'] as string;
  if (nonTcp !== 'queue' && nonTcp !== 'allow') throw new UsageError(`--non-tcp: '${nonTcp}' is not queue or allow`);
  const families: IpFamily[] = [4];
  if (ipv6 === 'on' || (ipv6 === 'auto' && existsSync('/proc/net/if_inet6'))) families.push(6);
  const port = (flag: string, fallback: number): number => {
    const text = values[flag as keyof typeof values];
    return typeof text === 'string' ? parsePort(`--${flag}`, text) : fallback;
  };
  return {
    dryRun: values['dry-run'] === true,
    request: {
      backend: backend as Backend | 'auto',
      families,
      cleanup: values.cleanup === true,
      seal: { queue: nonTcp === 'allow' ? null : parseQueue(values.nfqueue) },
      options: {
        proxyUid: parseId('--proxy-uid', values['proxy-uid'], 1337),
        proxyGid: parseId('--proxy-gid', values['proxy-gid'], 1337),
        proxyMark: parseMark('--proxy-mark', values['proxy-mark'], DEFAULT_PROXY_MARK),
        inboundPort: port('inbound-port', 15006),
        outboundPort: port('outbound-port', 15001),
        adminPort: port('admin-port', 15000),
        dnsPort: port('dns-port', 15053),
        redirectDns: values['redirect-dns'] === true,
        excludeInboundPorts: parsePortList('--exclude-inbound-ports', values['exclude-inbound-ports']),
        excludeOutboundPorts: parsePortList('--exclude-outbound-ports', values['exclude-outbound-ports']),
        excludeOutboundCidrs: parseCidrList('--exclude-outbound-cidrs', values['exclude-outbound-cidrs']),
      },
    },
  };
}

function parseQueue(text: string | undefined): number {
  const n = parseId('--nfqueue', text, DEFAULT_SEAL_QUEUE);
  if (n > 65535) throw new UsageError(`--nfqueue: ${n} is not a queue number (0-65535)`);
  return n;
}

export async function run(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    process.stderr.write(`sidewall init: ${(err as Error).message}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const { request, dryRun } = parsed;
  try {
    const backend = request.backend === 'auto' && dryRun ? 'nft' : resolveBackend(request.backend);
    const plans = dryRun ? planWithoutReading(request, backend) : plan(request, backend);
    if (dryRun) {
      for (const p of plans) process.stdout.write(`# ${p.tools.restore} --noflush\n${p.script ?? '# nothing to do\n'}`);
      return 0;
    }
    applyPlan(plans);
    const what = plans.every((p) => p.script === null) ? 'found nothing of ours to remove' : request.cleanup ? 'removed' : 'installed';
    process.stderr.write(`sidewall init: ${what} redirection (${backend}, IPv${plans.map((p) => p.family).join('+IPv')})\n`);
    return 0;
  } catch (err) {
    if (err instanceof IptablesError) {
      process.stderr.write(`sidewall init: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
