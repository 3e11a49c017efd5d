// `sidewall check`: what can be checked before and after an install, one line per check
// ('ok', 'WARN', 'FAIL', 'skip'), exit 1 when anything FAILs.
//   before: the chart values (the same schema and rules checks as `sidewall manifests`), rules
//           and sidecar config files, the kernel's iptables back ends and the netfilter features
//           `sidewall init` needs (tried in a scratch network namespace, nothing on the node changes);
//   after:  with --kubeconfig, the webhook registrations, their CA bundle against the serving
//           certificate, the webhook Deployment, and the labelled namespaces' ConfigMaps.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { checkCluster, type CheckLine } from '../../injector/install/cluster-check.js';
import { defaultChartValues, mergeValues, setValue, type ChartValues } from '../../injector/install/render.js';
import { chartValuesProblems } from '../../injector/install/values-check.js';
import { ConfigError, loadConfig } from '../config/load.js';
import { checkKernel, KERNEL_FEATURES } from '../iptables/kernel-check.js';
import { formatIssue, readRuleSource } from '../policy/source.js';
import { formatWarning, ruleWarnings } from '../policy/warnings.js';
import { normaliseSet } from './manifests.js';

const USAGE = `usage: sidewall check [--values FILE]... [--set key=value]... [--rules FILE]... [--cluster-rules FILE]...
                      [--config FILE]... [--no-kernel] [--kubeconfig FILE [--namespace sidewall-system]]

Before an install: the chart values (defaults + --values + --set, as sidewall manifests and helm
read them), rules files (--rules: a workload tier, --cluster-rules: the cluster tier), sidecar
config files, and this node's kernel: both iptables back ends (nft, legacy) loading exactly what
'sidewall init' writes (nat REDIRECT, owner match, mark, connmark, NFQUEUE), in a scratch network
namespace (needs root; run it on a node, or in a privileged pod with hostNetwork).
After an install (--kubeconfig): the webhook registrations, their caBundle against the serving
certificate, the webhook Deployment's ready replicas, and every namespace labelled for injection
(its sidecar config and cluster rules ConfigMaps, validated).
Prints one line per check (ok, WARN, FAIL, skip); exits 1 when any check FAILs.
`;

const LABEL: Record<CheckLine['status'], string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

function print(line: CheckLine): void {
  process.stdout.write(`${LABEL[line.status]}  ${line.name}: ${line.detail}\n`);
  for (const more of line.more ?? []) process.stdout.write(`        ${more}\n`);
}

function valuesLine(files: string[], sets: string[]): CheckLine {
  let values: ChartValues = defaultChartValues();
  for (const file of files) values = mergeValues(values, parseYaml(readFileSync(file, 'utf8')));
  for (const assignment of sets) values = setValue(values, normaliseSet(assignment));
  const problems = chartValuesProblems(values);
  const what = `chart defaults${files.length > 0 ? ` + ${files.join(', ')}` : ''}${sets.length > 0 ? ` + ${sets.length} --set` : ''}`;
  return problems.length === 0
    ? { status: 'ok', name: 'values', detail: `${what} validate (values.schema.json and the rules' checks)` }
    : { status: 'fail', name: 'values', detail: `${what}: ${problems.length} problem${problems.length === 1 ? '' : 's'}`, more: problems };
}

function rulesLine(file: string, tier: 'workload' | 'cluster'): CheckLine {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { status: 'fail', name: `${tier} rules ${file}`, detail: `cannot read: ${(err as Error).message}` };
  }
  const { rules, issues } = readRuleSource(text, file, { tier });
  if (issues.length > 0) return { status: 'fail', name: `${tier} rules ${file}`, detail: `${issues.length} problem${issues.length === 1 ? '' : 's'}`, more: issues.map(formatIssue) };
  const warnings = ruleWarnings(rules, file);
  return warnings.length === 0
    ? { status: 'ok', name: `${tier} rules ${file}`, detail: `${rules.length} rules` }
    : { status: 'warn', name: `${tier} rules ${file}`, detail: `${rules.length} rules, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`, more: warnings.map(formatWarning) };
}

function configLine(file: string): CheckLine {
  try {
    const config = loadConfig(file);
    return { status: 'ok', name: `config ${file}`, detail: `mode ${config.mode}, defaultAction ${config.defaultAction}` };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { status: 'fail', name: `config ${file}`, detail: `${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}`, more: err.problems };
  }
}

function kernelLines(): CheckLine[] {
  const report = checkKernel();
  if (report.checks === null) return [{ status: 'skip', name: 'kernel', detail: report.reason ?? 'not checked' }];
  const features = KERNEL_FEATURES.map((f) => f.name).join(', ');
  const lines: CheckLine[] = [];
  for (const backend of ['nft', 'legacy'] as const) {
    const checks = report.checks.filter((c) => c.backend === backend);
    const chosen = backend === report.autoBackend;
    const families = checks.map((c) => `IPv${c.family}`).join('+');
    const bad = checks.filter((c) => c.status !== 'ok');
    const name = `kernel iptables-${backend}${chosen ? ' (what init --backend auto picks here)' : ''}`;
    if (bad.length === 0) {
      lines.push({ status: 'ok', name, detail: `${families}: loads every rule sidewall init writes (${features})` });
      continue;
    }
    const more = bad.flatMap((c) => c.status === 'missing-tool'
      ? [`IPv${c.family}: ${c.error ?? 'tool missing'}`]
      : c.missing.length > 0
        ? c.missing.map((m) => `IPv${c.family}: ${m.feature}: ${m.error}`)
        : [`IPv${c.family}: ${c.error ?? 'refused'}`]);
    // The back end init would not use here only matters with --backend; a note, not a failure.
    lines.push({ status: chosen ? 'fail' : 'warn', name, detail: `${bad.length} of ${checks.length} families refused`, more });
  }
  return lines;
}

export async function run(args: string[]): Promise<number> {
  let values: {
    values?: string[]; set?: string[]; rules?: string[]; 'cluster-rules'?: string[]; config?: string[]; 'no-kernel'?: boolean;
    kubeconfig?: string; namespace?: string; help?: boolean;
  };
  try {
    values = parseArgs({
      args,
      options: {
        values: { type: 'string', short: 'f', multiple: true },
        set: { type: 'string', multiple: true },
        rules: { type: 'string', multiple: true },
        'cluster-rules': { type: 'string', multiple: true },
        config: { type: 'string', multiple: true },
        'no-kernel': { type: 'boolean' },
        kubeconfig: { type: 'string' },
        namespace: { type: 'string', short: 'n', default: 'sidewall-system' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`sidewall check: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const lines: CheckLine[] = [];
  const add = (line: CheckLine): void => {
    lines.push(line);
    print(line);
  };
  try {
    add(valuesLine(values.values ?? [], values.set ?? []));
  } catch (err) {
    add({ status: 'fail', name: 'values', detail: (err as Error).message });
  }
  for (const file of values['cluster-rules'] ?? []) add(rulesLine(file, 'cluster'));
  for (const file of values.rules ?? []) add(rulesLine(file, 'workload'));
  for (const file of values.config ?? []) add(configLine(file));
  if (values['no-kernel'] !== true) for (const line of kernelLines()) add(line);
  if (values.kubeconfig !== undefined) {
    try {
      for (const line of await checkCluster({ kubeconfig: values.kubeconfig, namespace: values.namespace ?? 'sidewall-system' })) add(line);
    } catch (err) {
      add({ status: 'fail', name: 'cluster', detail: `cannot check: ${(err as Error).message.split('\n')[0]}` });
    }
  }
  const failed = lines.filter((l) => l.status === 'fail').length;
  const warned = lines.filter((l) => l.status === 'warn').length;
  process.stdout.write(`${failed === 0 ? 'ok' : 'FAIL'}: ${lines.length} checks, ${failed} failed, ${warned} warnings\n`);
  return failed === 0 ? 0 : 1;
}
