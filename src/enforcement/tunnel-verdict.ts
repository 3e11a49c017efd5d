// What a tunnel finding does to traffic, for the L7 filter of TCP connections and the UDP DNS
// listener alike: it blocks only in `block` mode (`tunnels:` in the config) under `protect`, and
// the denial names the detector as its rule (`tunnel:<kind>`), so records say what cut the traffic.
import type { CompiledPolicy, Decision } from '../policy/index.js';
import type { TunnelMode } from './types.js';

/** The denial a finding of `kind` brings under `mode` and the policy in force, or null when it only alerts. */
export function tunnelDenial(mode: TunnelMode, kind: string, policy: CompiledPolicy): Decision | null {
  if (mode !== 'block' || policy.mode !== 'protect') return null;
  return { action: 'deny', verdict: 'denied', ruleId: `tunnel:${kind}`, policy: policy.hash, log: true, tier: 'default' };
}
