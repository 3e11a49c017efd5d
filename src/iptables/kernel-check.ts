// Can this node's kernel take the rules `sidewall init` writes? Each back end (nft, legacy) and
// family is tried for real: the exact script init would write into a clean pod, loaded with
// iptables-restore into a scratch network namespace (`unshare --net`, thrown away at once), so
// nothing on the node changes and a module the kernel lacks (or cannot autoload) shows as the
// kernel's own error. When the whole script fails, each feature is tried alone to name it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { planWithoutReading, type InitRequest } from './apply.js';
import { detectBackend, toolsFor, type Backend } from './backend.js';
import { DEFAULT_PROXY_MARK, type IpFamily } from './rules.js';

/** What the redirection and the guards need from netfilter, one rule each. */
export const KERNEL_FEATURES: ReadonlyArray<{ name: string; table: string; rule: string }> = [
  { name: 'nat REDIRECT', table: 'nat', rule: '-A OUTPUT -p tcp -j REDIRECT --to-ports 15001' },
  { name: 'owner match', table: 'nat', rule: '-A OUTPUT -p tcp -m owner --uid-owner 1337 -j RETURN' },
  { name: 'mark', table: 'mangle', rule: '-A OUTPUT -m mark --mark 0x539 -j MARK --set-xmark 0x539/0xffffffff' },
  { name: 'connmark', table: 'mangle', rule: '-A OUTPUT -m connmark --mark 0x1/0x1 -j CONNMARK --save-mark' },
  { name: 'NFQUEUE', table: 'mangle', rule: '-A OUTPUT -p udp -j NFQUEUE --queue-num 1337 --queue-bypass' },
];

export interface BackendCheck {
  backend: Backend;
  family: IpFamily;
  /** 'ok': init's whole script loads; 'missing-tool': no iptables-<backend>-restore; 'fail': the kernel refused. */
  status: 'ok' | 'missing-tool' | 'fail';
  /** Features that failed alone (status 'fail'), with the kernel's words. */
  missing: Array<{ feature: string; error: string }>;
  error?: string;
}

export interface KernelReport {
  /** Null: this process may not create a network namespace (not root / no CAP_SYS_ADMIN). */
  checks: BackendCheck[] | null;
  /** The back end `sidewall init --backend auto` picks here. */
  autoBackend: Backend;
  reason?: string;
}

/** Loads an iptables-restore script into a throw-away network namespace; ok or the kernel's words. */
export function restoreInScratchNetns(restore: string, script: string): { ok: boolean; error: string } {
  const result = spawnSync('unshare', ['--net', '--', restore, '--noflush'], { input: script, encoding: 'utf8', timeout: 20_000 });
  if (result.error) return { ok: false, error: result.error.message };
  return { ok: result.status === 0, error: (result.stderr || result.stdout || '').trim().split('\n').slice(0, 3).join(' | ') };
}

function canUnshare(): { ok: boolean; error: string } {
  const result = spawnSync('unshare', ['--net', '--', 'true'], { encoding: 'utf8', timeout: 10_000 });
  if (result.error) return { ok: false, error: `unshare: ${result.error.message}` };
  return { ok: result.status === 0, error: (result.stderr || '').trim() };
}

function hasTool(command: string): boolean {
  const result = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return result.error === undefined && result.status === 0;
}

/** The request `sidewall init` makes with the injector's defaults (DNS redirected, non-TCP queued). */
function defaultRequest(families: IpFamily[]): InitRequest {
  return {
    backend: 'nft',
    families,
    cleanup: false,
    seal: { queue: 1337 },
    options: {
      proxyUid: 1337, proxyGid: 1337, proxyMark: DEFAULT_PROXY_MARK,
      inboundPort: 15006, outboundPort: 15001, adminPort: 15000, dnsPort: 15053, redirectDns: true,
      excludeInboundPorts: [], excludeOutboundPorts: [], excludeOutboundCidrs: [],
    },
  };
}

export function checkKernel(backends: readonly Backend[] = ['nft', 'legacy']): KernelReport {
  const autoBackend = detectBackend();
  const unshare = canUnshare();
  if (!unshare.ok) return { checks: null, autoBackend, reason: `cannot create a scratch network namespace (${unshare.error || 'unshare failed'}); run as root` };
  const families: IpFamily[] = existsSync('/proc/net/if_inet6') ? [4, 6] : [4];
  const checks: BackendCheck[] = [];
  for (const backend of backends) {
    for (const plan of planWithoutReading(defaultRequest(families), backend)) {
      const tools = toolsFor(backend, plan.family);
      if (!hasTool(tools.restore)) {
        checks.push({ backend, family: plan.family, status: 'missing-tool', missing: [], error: `${tools.restore} is not installed` });
        continue;
      }
      const whole = restoreInScratchNetns(tools.restore, plan.script ?? '');
      if (whole.ok) {
        checks.push({ backend, family: plan.family, status: 'ok', missing: [] });
        continue;
      }
      const missing: BackendCheck['missing'] = [];
      for (const feature of KERNEL_FEATURES) {
        const alone = restoreInScratchNetns(tools.restore, `*${feature.table}\n:OUTPUT ACCEPT [0:0]\n${feature.rule}\nCOMMIT\n`);
        if (!alone.ok) missing.push({ feature: feature.name, error: alone.error });
      }
      checks.push({ backend, family: plan.family, status: 'fail', missing, error: whole.error });
    }
  }
  return { checks, autoBackend };
}
