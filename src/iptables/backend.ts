// Which netfilter back end the node uses. iptables 1.8 ships two: `nft` (the kernel's nftables
// through the iptables syntax; the default on current distributions, and the only one on some)
// and `legacy` (x_tables). Rules written into the other one than kube-proxy and the CNI use would
// still work but be invisible to their operators, so we follow what is already there, as the
// Kubernetes iptables-wrapper does: the back end holding more rules wins, nft when both are empty.
import { execFileSync } from 'node:child_process';
import type { IpFamily } from './rules.js';

export type Backend = 'nft' | 'legacy';

export interface BackendTools {
  save: string;
  restore: string;
}

export function toolsFor(backend: Backend, family: IpFamily): BackendTools {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  return { save: `${base}-${backend}-save`, restore: `${base}-${backend}-restore` };
}

function countRules(command: string): number {
  try {
    const out = execFileSync(command, [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    let n = 0;
    for (const line of out.split('\n')) if (line.startsWith('-A ')) n++;
    return n;
  } catch {
    return -1; // not installed, or the kernel lacks that back end
  }
}

export function detectBackend(): Backend {
  const nft = countRules('iptables-nft-save') + Math.max(0, countRules('ip6tables-nft-save'));
  const legacy = countRules('iptables-legacy-save') + Math.max(0, countRules('ip6tables-legacy-save'));
  if (nft < 0 && legacy >= 0) return 'legacy';
  return legacy > nft ? 'legacy' : 'nft';
}
