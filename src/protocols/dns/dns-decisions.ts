// The one set of DNS decisions, for DNS over TCP (dns-enforcer.ts) and the UDP listener
// (net/dns-udp-proxy.ts) alike, so the two transports cannot order checks differently:
// a query is shown to tunnel detection first, then decided by the rules (a tunnel denial wins);
// an answer is checked too — every CNAME/DNAME target in it (RFC 1034 §3.6.2, RFC 6672) is
// decided like the question (same type), since the resolver follows the alias and the client
// gets the addresses of the target: `allowed.example CNAME denied.example` must not resolve.
import type { CompiledPolicy, Decision } from '../../policy/index.js';
import type { DnsMessage } from '../types.js';
import type { DnsTunnelMonitor, TunnelFinding } from '../../tunnels/types.js';
import { requestFacts } from '../../enforcement/request-facts.js';
import { tunnelDenial } from '../../enforcement/tunnel-verdict.js';
import type { ConnectionFacts, TunnelMode } from '../../enforcement/types.js';

export interface DnsDecisionContext {
  policy: () => CompiledPolicy;
  monitor: DnsTunnelMonitor | null;
  tunnelMode: (kind: string, protocol: string, port: number) => TunnelMode;
}

export interface QueryVerdict {
  decision: Decision;
  /** A tunnel finding on this query (not 'off'), and whether it is what denies it. */
  finding: TunnelFinding | null;
  tunnelBlocked: boolean;
}

export function decideQuery(ctx: DnsDecisionContext, facts: ConnectionFacts, query: DnsMessage, now = Date.now()): QueryVerdict {
  const policy = ctx.policy();
  let finding = ctx.monitor?.onQuery(query.qname, query.qtype, now) ?? null;
  let denial: Decision | null = null;
  if (finding !== null) {
    const mode = ctx.tunnelMode(finding.kind, 'dns', facts.dst.port);
    if (mode === 'off') finding = null;
    else denial = tunnelDenial(mode, finding.kind, policy);
  }
  const decision = denial ?? policy.decide(requestFacts(facts, 'dns', { dns: { name: query.qname, type: query.qtype } }));
  return { decision, finding, tunnelBlocked: denial !== null };
}

/**
 * The decision that keeps an answer from the client: the first alias target the rules do not
 * allow (`verdict` not 'allowed'; in monitor/learn its action is still 'allow'), or null.
 */
export function checkAnswer(ctx: DnsDecisionContext, facts: ConnectionFacts, answer: DnsMessage, qtype: string): { alias: string; decision: Decision } | null {
  if (answer.aliases.length === 0) return null;
  const policy = ctx.policy();
  for (const alias of answer.aliases) {
    const decision = policy.decide(requestFacts(facts, 'dns', { dns: { name: alias, type: qtype } }));
    if (decision.verdict !== 'allowed') return { alias, decision };
  }
  return null;
}

/** Shows an answer to tunnel detection (sizes of TXT/NULL payloads and the like). */
export function answerFinding(ctx: DnsDecisionContext, facts: ConnectionFacts, answer: DnsMessage, now = Date.now()): TunnelFinding | null {
  const size = answer.answers.reduce((n, a) => n + a.size, 0);
  const finding = ctx.monitor?.onResponse(answer.qname, answer.qtype, size, answer.answerCount, now) ?? null;
  if (finding === null || ctx.tunnelMode(finding.kind, 'dns', facts.dst.port) === 'off') return null;
  return finding;
}
