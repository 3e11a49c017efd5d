// The policy in force, rebuilt when its sources change:
// - cluster tier: the `clusterRules` file (a ConfigMap mount);
// - workload tier: `rules` in the config file, or else the pod annotation sidewall.io/rules read
//   from `<podInfo>/annotations` (downward API);
// - mode: the annotation sidewall.io/mode, else `mode` in the config; defaultAction from the config.
// ConfigMap and downward API volumes change by swapping a `..data` symlink inside the folder, so
// the folders are watched (fs.watch), and a poll compares file contents as a fallback for
// filesystems without change events. A source that does not validate keeps the last good policy
// and emits 'reload-failed' (once per distinct content).
// A change takes effect only once two reads `debounceMs` apart agree: a writer that truncates and
// then writes (most editors, `cp`, `kubectl cp`) leaves an empty or half-written file for a
// moment, and a half-written rule list can be valid YAML with the deny rules at its end missing.
// An empty config file is refused outright (configFromText): read mid-write it would load as the
// defaults (monitor mode, no rules) — the firewall open for as long as the write took.

import { EventEmitter } from 'node:events';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname, join } from 'node:path';
import { compilePolicy } from '../policy/compile.js';
import { formatIssue, parseRuleText } from '../policy/source.js';
import type { CompiledPolicy, Mode, RuleIssue, Workload } from '../policy/types.js';
import { parseDownwardApiMap } from './downward-api.js';
import { configFromText, ConfigError, type SidecarConfig } from './load.js';

export const RULES_ANNOTATION = 'sidewall.io/rules';
export const MODE_ANNOTATION = 'sidewall.io/mode';

export interface PolicyStoreOptions {
  /** How often file contents are compared when no change event arrives; default 2000 ms, 0 = off. */
  pollIntervalMs?: number;
  /** Wait after a change event before reloading, to coalesce bursts; default 50 ms. */
  debounceMs?: number;
}

interface SourceTexts {
  config: string | undefined;
  cluster: string | undefined;
  annotations: string | undefined;
  /** The pod's labels (downward API): cluster rules with `appliesTo` follow them. */
  labels: string | undefined;
  namespace: string | undefined;
  serviceAccount: string | undefined;
}

type BuildResult = { policy: CompiledPolicy } | { issues: RuleIssue[]; source: string };

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw error;
  }
}

export interface PolicyStoreEvents {
  reload: [policy: CompiledPolicy];
  'reload-failed': [issues: RuleIssue[], source: string];
}

export class PolicyStore extends EventEmitter<PolicyStoreEvents> {
  private policy: CompiledPolicy;
  private lastFingerprint: string;
  /** Sources seen changed at the last read and not yet applied: they apply when the next read agrees. */
  private pendingFingerprint: string | undefined;
  private readonly watchers: FSWatcher[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private config: SidecarConfig,
    private readonly configPath: string | undefined,
    initial: CompiledPolicy,
    fingerprint: string,
    private readonly options: Required<PolicyStoreOptions>,
  ) {
    super();
    this.policy = initial;
    this.lastFingerprint = fingerprint;
  }

  /** Builds the first policy; throws ConfigError listing every RuleIssue if it does not validate. */
  static async open(config: SidecarConfig, configPath?: string, options: PolicyStoreOptions = {}): Promise<PolicyStore> {
    const resolved = { pollIntervalMs: options.pollIntervalMs ?? 2000, debounceMs: options.debounceMs ?? 50 };
    const texts = readSources(config, configPath);
    const result = build(config, configPath, texts);
    if ('issues' in result) {
      const first = result.issues[0]!;
      const all = result.issues.map(formatIssue);
      const where = first.index === null ? first.field : first.field === '' ? `rules[${first.index}]` : `rules[${first.index}].${first.field}`;
      const more = all.length > 1 ? ` (and ${all.length - 1} more: ${all.slice(1).join('; ')})` : '';
      throw new ConfigError(first.source, where, first.message + more, all);
    }
    const store = new PolicyStore(config, configPath, result.policy, fingerprint(texts), resolved);
    store.startWatching();
    return store;
  }

  /** The policy in force: an immutable snapshot, replaced as a whole on reload. */
  current(): CompiledPolicy {
    return this.policy;
  }

  /**
   * Re-reads every source now; returns true when a new policy took effect. Changed sources take
   * effect when they read the same as at the previous call (else a re-read is scheduled).
   */
  reload(): boolean {
    if (this.closed) return false;
    let texts: SourceTexts;
    try {
      texts = readSources(this.config, this.configPath);
    } catch (error) {
      this.fail([{ source: this.configPath ?? 'sources', index: null, field: '', message: `cannot read: ${(error as Error).message}` }], this.configPath ?? 'sources', `read-error:${(error as Error).message}`);
      return false;
    }
    const print = fingerprint(texts);
    if (print === this.lastFingerprint) {
      this.pendingFingerprint = undefined;
      return false;
    }
    if (print !== this.pendingFingerprint) {
      // Still being written, perhaps: apply once a read debounceMs later finds the same content.
      this.pendingFingerprint = print;
      this.scheduleReload();
      return false;
    }
    this.pendingFingerprint = undefined;
    let config = this.config;
    if (this.configPath !== undefined) {
      const path = this.configPath;
      const refuse = (problems: string[]): false => {
        this.fail(problems.map((message) => ({ source: path, index: null, field: '', message })), path, print);
        return false;
      };
      if (texts.config === undefined) return refuse(['cannot read the config: file not found; keeping the last good rules until it is back']);
      try {
        config = configFromText(texts.config, path);
      } catch (error) {
        return refuse(error instanceof ConfigError ? error.problems : [(error as Error).message]);
      }
    }
    const result = build(config, this.configPath, texts);
    if ('issues' in result) {
      this.fail(result.issues, result.source, print);
      return false;
    }
    this.lastFingerprint = print;
    // Settings other than rules, mode and defaultAction need a restart; paths keep their first value.
    this.config = { ...config, clusterRules: this.config.clusterRules, podInfo: this.config.podInfo } as SidecarConfig;
    if (result.policy.hash === this.policy.hash) return false;
    this.policy = result.policy;
    this.emit('reload', result.policy);
    return true;
  }

  close(): void {
    this.closed = true;
    for (const watcher of this.watchers) watcher.close();
    this.watchers.length = 0;
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    if (this.debounceTimer !== undefined) clearTimeout(this.debounceTimer);
  }

  private fail(issues: RuleIssue[], source: string, print: string): void {
    // Remember the bad content so that polling does not report the same failure again.
    this.lastFingerprint = print;
    this.emit('reload-failed', issues, source);
  }

  private startWatching(): void {
    const folders = new Set<string>();
    if (this.configPath !== undefined) folders.add(dirname(this.configPath));
    if (this.config.clusterRules !== undefined) folders.add(dirname(this.config.clusterRules));
    if (this.config.podInfo !== undefined) folders.add(this.config.podInfo);
    for (const folder of folders) {
      try {
        const watcher = watch(folder, { persistent: false }, () => this.scheduleReload());
        watcher.on('error', () => watcher.close()); // folder removed: the poll still covers it
        this.watchers.push(watcher);
      } catch {
        // Folder missing or watching unsupported: the poll covers it.
      }
    }
    if (this.options.pollIntervalMs > 0) {
      this.pollTimer = setInterval(() => this.reload(), this.options.pollIntervalMs);
      this.pollTimer.unref();
    }
  }

  private scheduleReload(): void {
    if (this.closed) return;
    if (this.debounceTimer !== undefined) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.reload();
    }, this.options.debounceMs);
    this.debounceTimer.unref();
  }
}

function readSources(config: SidecarConfig, configPath: string | undefined): SourceTexts {
  return {
    config: configPath === undefined ? undefined : readIfExists(configPath),
    cluster: config.clusterRules === undefined ? undefined : readIfExists(config.clusterRules),
    annotations: config.podInfo === undefined ? undefined : readIfExists(join(config.podInfo, 'annotations')),
    labels: config.podInfo === undefined ? undefined : readIfExists(join(config.podInfo, 'labels')),
    namespace: (config.podInfo === undefined ? undefined : readIfExists(join(config.podInfo, 'namespace'))?.trim()) || process.env.POD_NAMESPACE,
    serviceAccount: (config.podInfo === undefined ? undefined : readIfExists(join(config.podInfo, 'serviceAccount'))?.trim()) || process.env.POD_SERVICE_ACCOUNT,
  };
}

function fingerprint(texts: SourceTexts): string {
  return JSON.stringify([texts.config, texts.cluster, texts.annotations, texts.labels, texts.namespace, texts.serviceAccount]);
}

/**
 * The protected pod's identity for cluster rules with `appliesTo`: known when the downward API
 * folder is mounted (labels from its `labels` file; namespace from its `namespace` file or
 * POD_NAMESPACE; service account from a `serviceAccount` file or POD_SERVICE_ACCOUNT, which the
 * webhook sets from spec.serviceAccountName and the validating webhook holds to that field).
 * Not mounted: unknown (see CompileInput.pod).
 */
function podIdentity(config: SidecarConfig, texts: SourceTexts): { pod: Workload | null } | { issues: RuleIssue[]; source: string } {
  if (config.podInfo === undefined) return { pod: null };
  const file = join(config.podInfo, 'labels');
  let labels: Record<string, string> = {};
  try {
    if (texts.labels !== undefined) labels = parseDownwardApiMap(texts.labels, file);
  } catch (error) {
    return { issues: [{ source: file, index: null, field: '', message: (error as Error).message }], source: file };
  }
  const pod: Workload = { labels };
  if (texts.namespace) pod.namespace = texts.namespace;
  if (texts.serviceAccount) pod.serviceAccount = texts.serviceAccount;
  return { pod };
}

const ANNOTATION_SOURCE = `annotation ${RULES_ANNOTATION}`;

function build(config: SidecarConfig, configPath: string | undefined, texts: SourceTexts): BuildResult {
  let clusterRules: unknown = [];
  const clusterSource = config.clusterRules ?? 'cluster rules';
  if (config.clusterRules !== undefined) {
    if (texts.cluster === undefined) {
      return { issues: [{ source: clusterSource, index: null, field: '', message: 'the cluster rules file does not exist (clusterRules in the config)' }], source: clusterSource };
    }
    const parsed = parseRuleText(texts.cluster, clusterSource);
    if (!parsed.ok) return { issues: parsed.issues, source: clusterSource };
    clusterRules = parsed.value;
  }

  let annotations: Record<string, string> = {};
  if (config.podInfo !== undefined && texts.annotations !== undefined) {
    const file = join(config.podInfo, 'annotations');
    try {
      annotations = parseDownwardApiMap(texts.annotations, file);
    } catch (error) {
      return { issues: [{ source: file, index: null, field: '', message: (error as Error).message }], source: file };
    }
  }

  let workloadRules: unknown = [];
  let workloadSource = ANNOTATION_SOURCE;
  if (config.rules !== undefined) {
    workloadRules = config.rules;
    workloadSource = configPath ?? config.file ?? 'config rules';
  } else if (annotations[RULES_ANNOTATION] !== undefined) {
    const parsed = parseRuleText(annotations[RULES_ANNOTATION], ANNOTATION_SOURCE);
    if (!parsed.ok) return { issues: parsed.issues, source: ANNOTATION_SOURCE };
    workloadRules = parsed.value;
  }

  let mode: Mode = config.mode;
  const modeAnnotation = annotations[MODE_ANNOTATION];
  if (modeAnnotation !== undefined) {
    const value = modeAnnotation.trim();
    if (value !== 'protect' && value !== 'monitor' && value !== 'learn') {
      const source = `annotation ${MODE_ANNOTATION}`;
      return { issues: [{ source, index: null, field: '', message: `'${value}' is not a mode (protect, monitor, learn)` }], source };
    }
    mode = value;
  }

  const identity = podIdentity(config, texts);
  if ('issues' in identity) return identity;
  const result = compilePolicy({ clusterRules, workloadRules, defaultAction: config.defaultAction, mode, clusterSource, workloadSource, pod: identity.pod });
  if ('issues' in result) return { issues: result.issues, source: result.issues[0]!.source };
  return result;
}
