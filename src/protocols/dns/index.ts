// DNS over TCP (RFC 7766): query detection, the length-prefixed message parser, a verdict per query.
import { DnsStreamEnforcer } from './dns-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { detectDns } from './detect.js';
import { DnsStreamParser } from './dns-stream-parser.js';
import { dnsLearning } from './learn.js';

export const dnsProtocol = {
  name: 'dns',
  detectClient: detectDns,
  // Its 2-byte length prefix says too little: a cut flow is never taken for DNS.
  detectCut: null,
  createParser: () => new DnsStreamParser(),
  enforcer: (deps) => new DnsStreamEnforcer(deps),
  learn: dnsLearning,
  describe: (l7) => `${String(l7.name ?? '')} ${String(l7.type ?? '')} ${String(l7.rcode ?? '')}`.trim(),
} as const satisfies ProtocolPlugin<'dns'>;
