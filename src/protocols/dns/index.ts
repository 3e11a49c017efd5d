// DNS over TCP (RFC 7766): query detection, the length-prefixed message parser, a verdict per query.
import { DnsStreamEnforcer } from './dns-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { dnsRuleBlock } from './rule-block.js';
import { detectDns } from './detect.js';
import { DnsStreamParser } from './dns-stream-parser.js';
import { dnsLearning } from './learn.js';

export const dnsProtocol = {
  name: 'dns',
  detectClient: detectDns,
  // Its 2-byte length prefix says too little: a cut flow is never taken for DNS.
  detectCut: null,
  ruleBlock: dnsRuleBlock as ProtocolPlugin['ruleBlock'],
  createParser: () => new DnsStreamParser(),
  enforcer: (deps) => new DnsStreamEnforcer(deps),
  learn: dnsLearning,
  // A query's record, over TCP (dns-enforcer.ts) and UDP (net/dns-udp-proxy.ts).
  recordFields: {
    name: { type: 'string', description: 'The question name.' },
    type: { type: 'string', description: 'The question type (A, AAAA, TXT, TYPE65, ...).' },
    rcode: { type: 'string', description: 'The answer\'s rcode (REFUSED for a query or answer the sidecar denied).' },
    answers: { type: 'integer', minimum: 0, description: 'Records in the answer section.' },
    deniedAlias: { type: 'string', description: 'The CNAME/DNAME target a rule denied (the answer was replaced by REFUSED).' },
    notDns: { type: 'boolean', description: 'A datagram to the DNS port that is not a DNS query.' },
  },
  describe: (l7) => `${String(l7.name ?? '')} ${String(l7.type ?? '')} ${String(l7.rcode ?? '')}`.trim(),
} as const satisfies ProtocolPlugin<'dns'>;
