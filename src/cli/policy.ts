// `sidewall policy check|test|learn`: validate a rules file, show which rule a flow would hit, or
// generate the workload's rules from what its sidecar learned.
import { readFileSync } from 'node:fs';
import { ConfigError, parseConfig } from '../config/load.js';
import { parseArgs } from 'node:util';
import {
  compilePolicy, formatIssue, parseRuleText, readRuleSource,
  type Direction, type FlowFacts, type Mode, type RuleIssue, type ServiceDestination, type ServiceEndpoint, type Workload,
} from '../policy/index.js';
import type { NormalizedRule } from '../policy/schema.js';
import { formatWarning, ruleWarnings } from '../policy/warnings.js';
import { commonWorkload } from '../identity/service-directory.js';
import { WorkloadDirectory } from '../identity/workload-directory.js';
import {
  fetchModel, formatRules, generateRules, LearnModel, readModelSources, rulesYaml, RULES_FORMATS,
  FlowLineError, LearnFetchError, LearnStateError, type ModelSource,
} from '../learn/index.js';

const HELP = `usage:
  sidewall policy check FILE [--tier workload|cluster] [--cluster FILE]
  sidewall policy test FILE --flow JSON [--pod JSON] [--cluster FILE] [--mode MODE] [--default-action ACTION] [--json]
  sidewall policy learn [FILE...] [--from ADMIN] [-o yaml|json|annotation|patch] [--lock] [--template]

FILE holds rules as YAML or JSON: a list of rules, {rules: [...]}, or a sidecar config with
rules (and mode, defaultAction). Use '-' to read standard input.

check   prints every problem as 'FILE: rules[INDEX].FIELD: message' and exits 1,
        or prints 'ok: N rules, policy HASH' and exits 0; likely mistakes (a path glob
        '/admin*' that does not reach '/admin/x', an unknown method, an empty file, a rule an
        earlier one shadows) are printed to stderr as 'WARNING: ...' and still exit 0.
test    prints the decision for the flow: verdict, ruleId, policy (and what the proxy can
        decide when the connection opens, before reading any byte). Exits 0.
learn   prints the workload tier's rules for what a sidecar learned (mode: learn): read from a
        running sidecar's admin port (--from), or from flow records as JSON lines or a saved
        model (learn.stateFile) in FILEs or on standard input. Allow rules, most specific first,
        each with an id and its provenance (description); the output passes 'policy check'.

flags:
  --tier workload|cluster   which tier FILE is (check; default workload; cluster allows 'pass')
  --cluster FILE            cluster rules, evaluated before FILE's rules (and checked with it)
  --flow JSON               the flow facts, e.g.
                            '{"direction":"egress","dst":{"ip":"10.0.0.7","port":80},"protocol":"http",
                              "l7":{"http":{"method":"GET","path":"/api/items"}}}'
                            src/dst: {ip, port, workload: {namespace, pod, labels, serviceAccount}}
                            a Service destination: dst.service {namespace, name, endpoints:
                              [{ip, workload}]} (its ready endpoints), or a dst.ip that FILE's
                              services: list names (a sidecar config)
                            l7.dlp: {"sensors":["pci-pan"]} — the DLP sensors that hit (rules' dlp matchers)
  --pod JSON                the protected pod, for cluster rules with appliesTo:
                            '{"namespace":"shop","labels":{"pci":"true"},"serviceAccount":"cart"}'
                            (absent: unknown — appliesTo rules are in force only when they deny)
  --mode protect|monitor|learn        default: the file's mode, else monitor
  --default-action allow|deny         default: the file's defaultAction, else deny
  --json                    print the decision as one JSON object
  --from ADMIN              learn: the sidecar's admin address, e.g. http://10.1.2.3:15000 or 127.0.0.1:15000
  -o, --output FORMAT       learn: yaml (a rules list; default), json, annotation (the sidewall.io/rules
                            annotation to paste under metadata.annotations), patch (a JSON merge patch:
                            kubectl patch pod NAME --type merge -p "$(sidewall policy learn ... -o patch)")
  --lock                    learn: annotation and patch also set sidewall.io/mode: protect
  --template                learn: the patch is for a workload's pod template (spec.template.metadata)
  -h, --help                this help
`;

class UsageError extends Error {}

/** `--pod`: the protected pod's identity, as the sidecar reads it from the downward API. */
function parsePod(json: string): Workload {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new UsageError(`--pod is not valid JSON: ${(error as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError('--pod must be a JSON object {namespace, labels, serviceAccount}');
  const record = value as Record<string, unknown>;
  const pod: Workload = {};
  for (const key of Object.keys(record)) {
    if (key !== 'namespace' && key !== 'labels' && key !== 'serviceAccount') throw new UsageError(`--pod: unknown key '${key}' (namespace, labels, serviceAccount)`);
  }
  if (record.namespace !== undefined) {
    if (typeof record.namespace !== 'string') throw new UsageError('--pod: namespace must be a string');
    pod.namespace = record.namespace;
  }
  if (record.serviceAccount !== undefined) {
    if (typeof record.serviceAccount !== 'string') throw new UsageError('--pod: serviceAccount must be a string');
    pod.serviceAccount = record.serviceAccount;
  }
  if (record.labels !== undefined) {
    const labels = record.labels;
    if (labels === null || typeof labels !== 'object' || Array.isArray(labels) || Object.values(labels).some((v) => typeof v !== 'string')) throw new UsageError('--pod: labels must be an object of strings');
    pod.labels = labels as Record<string, string>;
  }
  return pod;
}

function readText(path: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
}

interface LoadedRules {
  rules: unknown;
  /** The valid rules, normalised (for the warnings). */
  normalized: NormalizedRule[];
  issues: RuleIssue[];
  count: number;
  /** Problems with the non-rule settings of a sidecar config ('FILE: field: problem'). */
  configProblems?: string[];
  mode?: Mode;
  defaultAction?: 'allow' | 'deny';
  /** A sidecar config's static identities and Services: a --flow destination IP is looked up in them. */
  directory?: WorkloadDirectory;
}

/** Reads a rules file; picks up mode and defaultAction when it is a sidecar config. */
function loadRules(path: string, tier: 'cluster' | 'workload'): LoadedRules {
  const text = readText(path);
  const { rules, issues } = readRuleSource(text, path, { tier });
  const loaded: LoadedRules = { rules: [], normalized: rules, issues, count: rules.length };
  const parsed = parseRuleText(text, path);
  if (parsed.ok) {
    loaded.rules = parsed.value;
    const doc = parsed.value;
    if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) {
      const record = doc as Record<string, unknown>;
      // A sidecar config: its other settings are checked too (rule issues are reported above).
      if (Object.keys(record).some((k) => k !== 'rules')) {
        try {
          const config = parseConfig({ ...record, rules: [] }, path);
          if (config.identities.length > 0 || config.services.length > 0) loaded.directory = new WorkloadDirectory(config.identities, config.services);
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          loaded.configProblems = error.problems;
        }
      }
      if (record.mode === 'protect' || record.mode === 'monitor' || record.mode === 'learn') loaded.mode = record.mode;
      if (record.defaultAction === 'allow' || record.defaultAction === 'deny') loaded.defaultAction = record.defaultAction;
    }
  }
  return loaded;
}

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}, not '${value}'`);
  return value as T;
}

function parseEndpoint(value: unknown, name: string): FlowFacts['src'] {
  if (value === undefined) return { ip: '', port: 0 };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`--flow: ${name} must be an object {ip, port, workload}`);
  const record = value as Record<string, unknown>;
  if (record.ip !== undefined && typeof record.ip !== 'string') throw new UsageError(`--flow: ${name}.ip must be a string`);
  if (record.port !== undefined && (typeof record.port !== 'number' || !Number.isInteger(record.port) || record.port < 0 || record.port > 65535)) {
    throw new UsageError(`--flow: ${name}.port must be a port number`);
  }
  const endpoint: FlowFacts['src'] = { ip: (record.ip as string | undefined) ?? '', port: (record.port as number | undefined) ?? 0 };
  if (record.workload !== undefined) {
    if (record.workload === null || typeof record.workload !== 'object') throw new UsageError(`--flow: ${name}.workload must be an object`);
    endpoint.workload = record.workload as NonNullable<FlowFacts['src']['workload']>;
  }
  if (record.service !== undefined) endpoint.service = parseService(record.service, `${name}.service`, endpoint);
  return endpoint;
}

/**
 * A Service destination: {namespace, name, endpoints: [{ip, workload}]}. Without `workload` on
 * the destination, it is what the endpoints share, as the sidecar computes it.
 */
function parseService(value: unknown, name: string, endpoint: FlowFacts['src']): ServiceDestination {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`--flow: ${name} must be an object {namespace, name, endpoints}`);
  const record = value as Record<string, unknown>;
  if (typeof record.namespace !== 'string' || typeof record.name !== 'string') throw new UsageError(`--flow: ${name} needs namespace and name (strings)`);
  const rawEndpoints = record.endpoints ?? [];
  if (!Array.isArray(rawEndpoints)) throw new UsageError(`--flow: ${name}.endpoints must be a list of {ip, workload}`);
  const endpoints: ServiceEndpoint[] = rawEndpoints.map((e: unknown, i) => {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new UsageError(`--flow: ${name}.endpoints[${i}] must be an object {ip, workload}`);
    const item = e as Record<string, unknown>;
    const out: ServiceEndpoint = { ip: typeof item.ip === 'string' ? item.ip : '' };
    if (item.workload !== undefined) {
      if (item.workload === null || typeof item.workload !== 'object') throw new UsageError(`--flow: ${name}.endpoints[${i}].workload must be an object`);
      out.workload = item.workload as Workload;
    }
    return out;
  });
  const service: ServiceDestination = { namespace: record.namespace, name: record.name };
  Object.defineProperty(service, 'endpoints', { value: endpoints, enumerable: false });
  if (endpoint.workload === undefined) {
    const common = commonWorkload(endpoints);
    if (common !== undefined) endpoint.workload = common;
  }
  return service;
}

function parseFlow(json: string): FlowFacts {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new UsageError(`--flow is not valid JSON: ${(error as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError('--flow must be a JSON object');
  const record = value as Record<string, unknown>;
  const directions: Direction[] = ['ingress', 'egress', 'intra'];
  if (typeof record.direction !== 'string' || !(directions as string[]).includes(record.direction)) {
    throw new UsageError(`--flow: direction must be one of ${directions.join(', ')}`);
  }
  const facts: FlowFacts = { direction: record.direction as Direction, src: parseEndpoint(record.src, 'src'), dst: parseEndpoint(record.dst, 'dst') };
  if (record.protocol !== undefined) {
    if (typeof record.protocol !== 'string') throw new UsageError('--flow: protocol must be a string');
    facts.protocol = record.protocol;
  }
  if (record.l7 !== undefined) {
    if (record.l7 === null || typeof record.l7 !== 'object') throw new UsageError('--flow: l7 must be an object');
    facts.l7 = record.l7 as NonNullable<FlowFacts['l7']>;
  }
  return facts;
}

function printIssues(issues: RuleIssue[]): void {
  for (const issue of issues) process.stdout.write(formatIssue(issue) + '\n');
}

async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      tier: { type: 'string' },
      cluster: { type: 'string' },
      flow: { type: 'string' },
      pod: { type: 'string' },
      mode: { type: 'string' },
      'default-action': { type: 'string' },
      json: { type: 'boolean' },
      from: { type: 'string' },
      output: { type: 'string', short: 'o' },
      lock: { type: 'boolean' },
      template: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const [sub, file, ...extra] = positionals;
  if (sub === 'learn') return runLearn(positionals.slice(1), values);
  if (sub !== 'check' && sub !== 'test') throw new UsageError(sub === undefined ? 'missing subcommand (check, test or learn)' : `unknown subcommand '${sub}'`);
  if (file === undefined) throw new UsageError(`policy ${sub} needs a FILE`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  const tier = oneOf('tier', values.tier, ['workload', 'cluster'] as const) ?? 'workload';
  const modeFlag = oneOf('mode', values.mode, ['protect', 'monitor', 'learn'] as const);
  const defaultFlag = oneOf('default-action', values['default-action'], ['allow', 'deny'] as const);
  if (sub === 'test' && values.flow === undefined) throw new UsageError('policy test needs --flow JSON');
  if (sub === 'test' && tier === 'cluster') throw new UsageError('--tier is for check; use --cluster FILE to test with cluster rules');
  const facts = sub === 'test' ? parseFlow(values.flow!) : undefined;
  const pod = values.pod === undefined ? null : parsePod(values.pod);

  const main = loadRules(file, tier);
  const cluster = values.cluster === undefined ? undefined : loadRules(values.cluster, 'cluster');
  const issues = [...(cluster?.issues ?? []), ...main.issues];
  const configProblems = [...(cluster?.configProblems ?? []), ...(main.configProblems ?? [])];
  if (issues.length > 0 || configProblems.length > 0) {
    printIssues(issues);
    for (const problem of configProblems) process.stdout.write(problem + '\n');
    return 1;
  }
  const mode = modeFlag ?? main.mode ?? 'monitor';
  const defaultAction = defaultFlag ?? main.defaultAction ?? 'deny';
  const clusterRules = tier === 'cluster' ? main.rules : cluster?.rules ?? [];
  const workloadRules = tier === 'cluster' ? [] : main.rules;
  const result = compilePolicy({
    clusterRules, workloadRules, defaultAction, mode, pod,
    clusterSource: tier === 'cluster' ? file : values.cluster ?? 'cluster rules',
    workloadSource: file,
  });
  if ('issues' in result) {
    printIssues(result.issues);
    return 1;
  }
  const policy = result.policy;
  if (sub === 'check') {
    // Likely mistakes: marked WARNING on stderr, exit 0 (the rules mean something, maybe not what was meant).
    const warnings = [
      ...(cluster === undefined ? [] : ruleWarnings(cluster.normalized, values.cluster!, defaultAction)),
      ...ruleWarnings(main.normalized, file, defaultAction),
    ];
    for (const warning of warnings) process.stderr.write(formatWarning(warning) + '\n');
    process.stdout.write(`ok: ${policy.ruleCount} rules, policy ${policy.hash}${warnings.length > 0 ? ` (${warnings.length} warning${warnings.length === 1 ? '' : 's'})` : ''}\n`);
    return 0;
  }
  // A destination IP that the file's static `services:` (or `identities:`) know, as the sidecar would see it.
  if (main.directory !== undefined && facts!.direction !== 'ingress' && facts!.dst.workload === undefined && facts!.dst.service === undefined && facts!.dst.ip !== '') {
    facts!.dst = main.directory.describe(facts!.dst.ip, facts!.dst.port, true);
  }
  const decision = policy.decide(facts!);
  const { protocol: _protocol, l7: _l7, ...l4 } = facts!;
  const atConnect = policy.decideConnection(l4);
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...decision, mode: policy.mode, atConnect: atConnect === 'needs-l7' ? atConnect : atConnect.ruleId }) + '\n');
    return 0;
  }
  const lines = [
    `verdict: ${decision.verdict}`,
    `ruleId: ${decision.ruleId}`,
    `policy: ${decision.policy}`,
    `action: ${decision.action} (mode ${policy.mode})`,
    `tier: ${decision.tier}`,
    `at connect: ${atConnect === 'needs-l7' ? 'needs L7 (the first rule matching on address and port has protocol or L7 matchers)' : `decided by ${atConnect.ruleId} (${atConnect.verdict})`}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

interface LearnFlags {
  from?: string;
  output?: string;
  lock?: boolean;
  template?: boolean;
}

async function runLearn(files: string[], values: LearnFlags): Promise<number> {
  const format = oneOf('output', values.output, RULES_FORMATS) ?? 'yaml';
  const model = new LearnModel();
  const fail = (message: string): number => {
    process.stderr.write(`sidewall policy learn: ${message}\n`);
    return 1;
  };
  try {
    if (values.from !== undefined) {
      const fetched = await fetchModel(values.from);
      model.load(fetched.data, fetched.name);
    }
    const inputs = files.length > 0 ? files : values.from === undefined ? ['-'] : [];
    const sources: ModelSource[] = inputs.map((f) => ({ name: f === '-' ? 'stdin' : f, text: readText(f) }));
    const summary = readModelSources(model, sources);
    for (const problem of summary.problems) process.stderr.write(`sidewall policy learn: skipped ${problem.message}\n`);
    if (summary.skipped > summary.problems.length) process.stderr.write(`sidewall policy learn: skipped ${summary.skipped - summary.problems.length} more lines\n`);
  } catch (error) {
    if (error instanceof LearnFetchError || error instanceof LearnStateError || error instanceof FlowLineError) return fail(error.message);
    throw error;
  }
  const rules = generateRules(model);
  // The promise of this command: what it prints passes `sidewall policy check`.
  const issues = readRuleSource(rulesYaml(rules), 'generated rules').issues;
  if (issues.length > 0) {
    for (const issue of issues) process.stderr.write(`sidewall policy learn: internal error: ${formatIssue(issue)}\n`);
    return 1;
  }
  const counters = model.toState();
  const header = `sidewall policy learn: ${rules.length} rules from ${counters.observed} observations` +
    ` (folded ${counters.folded}, dropped ${counters.dropped}); paste as the sidewall.io/rules annotation`;
  process.stdout.write(formatRules(rules, format, { lock: values.lock === true, template: values.template === true, header }));
  process.stderr.write(`${header.replace(/; paste.*$/, '')}\n`);
  if (rules.length === 0) process.stderr.write('sidewall policy learn: nothing learned yet (is the sidecar in learn mode, and has traffic passed?)\n');
  return 0;
}

export async function run(args: string[]): Promise<number> {
  try {
    return await runCommand(args);
  } catch (error) {
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`sidewall policy: ${(error as Error).message}\nRun 'sidewall policy --help' for usage.\n`);
      return 2;
    }
    throw error;
  }
}
