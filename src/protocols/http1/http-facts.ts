// The L7 facts of an HTTP request for the rules (HTTP/1 and HTTP/2). Headers become a record only when a rule asks
// for them (a `headers:` matcher): most requests are decided on method, path and host alone.
import type { CompiledPolicy, Decision } from '../../policy/index.js';
import type { HeaderList } from '../types.js';

export class HttpRequestFacts {
  private record: Record<string, string> | undefined;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly host: string | undefined,
    private readonly list: HeaderList,
  ) {}

  /** Lower-case names; repeated headers joined with ", " (RFC 9110 §5.3). */
  get headers(): Record<string, string> {
    if (this.record === undefined) {
      const out: Record<string, string> = {};
      for (const [name, value] of this.list) out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
      this.record = out;
    }
    return this.record;
  }
}

/** The rule id of requests refused before any rule: their target or host could be read two ways. */
export const INVALID_TARGET_RULE = 'http:invalid-target';

/**
 * A request whose target or host servers could read differently (request-target.ts) is refused
 * under `protect`; `monitor` and `learn` record that it would be and let it pass.
 */
export function invalidTargetDecision(policy: CompiledPolicy): Decision {
  return policy.mode === 'protect'
    ? { action: 'deny', verdict: 'denied', ruleId: INVALID_TARGET_RULE, policy: policy.hash, log: true, tier: 'default' }
    : { action: 'allow', verdict: 'would-deny', ruleId: INVALID_TARGET_RULE, policy: policy.hash, log: true, tier: 'default' };
}
