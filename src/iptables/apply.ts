// Runs the pod's redirection through iptables-save / iptables-restore --noflush: one atomic
// transaction per family (nat and filter tables together), touching only our chains and the jumps into them.
import { spawnSync } from 'node:child_process';
import { detectBackend, toolsFor, type Backend } from './backend.js';
import { cleanupScript, emptyTables, installScript, parseSave, type CurrentTables, type IpFamily, type RedirectOptions, type TableState } from './rules.js';
import { sealCleanupLines, sealScript, type SealOptions } from './seal-rules.js';

export class IptablesError extends Error {
  readonly code = 'SIDEWALL_IPTABLES';
  constructor(message: string) {
    super(message);
    this.name = 'IptablesError';
  }
}

export interface FamilyPlan {
  family: IpFamily;
  tools: { save: string; restore: string };
  /** The iptables-restore input; null when there is nothing to do (cleanup of a clean table). */
  script: string | null;
}

export interface InitRequest {
  options: RedirectOptions;
  /** The non-TCP guard (mangle and filter tables, seal-rules.ts). */
  seal: SealOptions;
  backend: Backend | 'auto';
  families: IpFamily[];
  cleanup: boolean;
}

function run(command: string, args: string[], input?: string): string {
  const result = spawnSync(command, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  if (result.error) throw new IptablesError(`${command}: ${result.error.message}`);
  if (result.status !== 0) {
    const said = (result.stderr || result.stdout).trim();
    throw new IptablesError(`${command} ${args.join(' ')} failed (exit ${result.status}): ${said}`);
  }
  return result.stdout;
}

export function resolveBackend(requested: Backend | 'auto'): Backend {
  return requested === 'auto' ? detectBackend() : requested;
}

/** The nat and filter script (redirection, listener guard) followed by the mangle and filter sections of the non-TCP guard (one transaction). */
function familyScript(request: InitRequest, family: IpFamily, current: CurrentTables & { mangle: TableState }): string | null {
  const nat = request.cleanup ? cleanupScript(current) : installScript(request.options, family, current);
  const seal = request.cleanup ? sealCleanupLines(current) : sealScript(request.options, request.seal, family, current);
  if (nat === null && seal.length === 0) return null;
  return `${nat ?? ''}${seal.length > 0 ? `${seal.join('\n')}\n` : ''}`;
}

/** Reads the current nat, mangle and filter tables and computes each family's transaction. */
export function plan(request: InitRequest, backend: Backend): FamilyPlan[] {
  return request.families.map((family) => {
    const tools = toolsFor(backend, family);
    const current: CurrentTables & { mangle: TableState } = {
      nat: parseSave(run(tools.save, ['-t', 'nat']), 'nat'),
      filter: parseSave(run(tools.save, ['-t', 'filter']), 'filter'),
      mangle: parseSave(run(tools.save, ['-t', 'mangle']), 'mangle'),
    };
    return { family, tools, script: familyScript(request, family, current) };
  });
}

/** Dry-run flavour of plan(): no table is read, the install script is what a clean pod would get. */
export function planWithoutReading(request: InitRequest, backend: Backend): FamilyPlan[] {
  const empty = (): CurrentTables & { mangle: TableState } => ({ ...emptyTables(), mangle: { chains: new Set<string>(), rules: [] } });
  return request.families.map((family) => ({
    family,
    tools: toolsFor(backend, family),
    script: request.cleanup ? null : familyScript(request, family, empty()),
  }));
}

/**
 * Each family is one kernel transaction; across families we get all-or-nothing by letting every
 * transaction pass `--test` (parsed and checked by the kernel, not committed) before committing any.
 */
export function applyPlan(plans: FamilyPlan[]): void {
  for (const p of plans) {
    if (p.script !== null) run(p.tools.restore, ['--noflush', '--test'], p.script);
  }
  for (const p of plans) {
    if (p.script !== null) run(p.tools.restore, ['--noflush'], p.script);
  }
}
