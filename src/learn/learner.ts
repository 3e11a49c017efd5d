// The sidecar's learning mode and drift lock, as a flow sink (src/flows/entry.ts): it sees every
// stamped record without touching the data path.
// - mode `learn`: request and connection records feed the model; the model is saved to the state
//   file (atomically: temporary file, then rename) every saveIntervalMs when it changed, and on
//   close, and read back at start, so it survives restarts of the container.
// - mode `protect`: a record denied by the default action is behaviour nothing allowed; an
//   `alert` record says "new behaviour" and carries the rule that would allow it (`suggestion`),
//   once per distinct rule per alertIntervalMs.
// offer() only queues (bounded); the work runs in one setImmediate batch, so the alerts it emits
// through the pipeline come after the record that caused them and never re-enter emit().
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { writeFile, rename, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type pino from 'pino';
import type { FlowEntry, FlowSink } from '../flows/entry.js';
import type { FlowRecord, FlowRecordDraft } from '../flows/types.js';
import type { Mode } from '../policy/types.js';
import { pluginForRecord } from '../protocols/registry.js';
import { rulesYaml } from './format.js';
import { LearnModel, type LearnLimits, type ModelState } from './model.js';
import { suggestRule, type LearnedRule } from './rules.js';
import { LearnStateError } from './errors.js';

export interface LearnerOptions {
  /** The mode in force now (PolicyStore: `() => store.current().mode`). */
  mode: () => Mode;
  /** Where the model is kept across restarts; none: memory only. */
  stateFile?: string;
  limits?: Partial<LearnLimits>;
  /** How often a changed model is written; default 30 s. */
  saveIntervalMs?: number;
  /** One alert per distinct suggested rule within this window; default 60 s. */
  alertIntervalMs?: number;
  /** Records queued between batches before new ones are dropped (and counted); default 10,000. */
  maxPending?: number;
  logger?: pino.Logger;
}

export interface LearnerStatus {
  mode: Mode;
  stateFile: string | null;
  services: number;
  nodes: number;
  /** Records not looked at because the queue was full. */
  queueDropped: number;
  alerts: number;
  alertsSuppressed: number;
  saves: number;
  saveErrors: number;
}

/** What the admin port serves at /learn/model: the saved-model JSON plus the learner's status. */
export interface LearnModelReport extends ModelState {
  status: LearnerStatus;
}

const DEDUPE_ENTRIES = 4096;

export class Learner implements FlowSink {
  readonly name = 'learn';
  readonly model: LearnModel;
  private emitDraft: ((draft: FlowRecordDraft) => number) | null = null;
  private pending: FlowEntry[] = [];
  private pendingModes: Mode[] = [];
  private scheduled = false;
  private closed = false;
  private dirty = false;
  private saving: Promise<void> | null = null;
  private saveTimer: NodeJS.Timeout | null = null;
  private readonly lastAlert = new Map<string, number>();
  private readonly status = { queueDropped: 0, alerts: 0, alertsSuppressed: 0, saves: 0, saveErrors: 0 };
  private readonly processBound = (): void => this.process();
  private readonly saveTickBound = (): void => void this.save();

  constructor(private readonly options: LearnerOptions) {
    this.model = new LearnModel(options.limits);
    if (options.stateFile !== undefined) this.loadState(options.stateFile);
    const interval = options.saveIntervalMs ?? 30_000;
    if (options.stateFile !== undefined && interval > 0) {
      this.saveTimer = setInterval(this.saveTickBound, interval);
      this.saveTimer.unref();
    }
  }

  /** The pipeline's emit, for alert records (the pipeline is created after its sinks). */
  bindEmitter(emit: (draft: FlowRecordDraft) => number): void {
    this.emitDraft = emit;
  }

  offer(entry: FlowEntry): void {
    if (this.closed) return;
    const record = entry.record;
    if (record.type === 'alert') return; // our own alerts (and tunnel alerts) are not traffic
    const mode = this.options.mode();
    if (mode === 'learn') {
      if (record.interim === true) return;
    } else if (mode !== 'protect' || record.verdict !== 'denied' || (record.ruleId !== 'default' && record.ruleId !== null)) {
      return;
    }
    if (this.pending.length >= (this.options.maxPending ?? 10_000)) {
      this.status.queueDropped++;
      return;
    }
    this.pending.push(entry);
    this.pendingModes.push(mode);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.processBound);
    }
  }

  /** Runs the queued records now (also what the scheduled batch does). */
  process(): void {
    this.scheduled = false;
    const entries = this.pending;
    const modes = this.pendingModes;
    this.pending = [];
    this.pendingModes = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const timeMs = Number(entry.epochNs / 1_000_000n);
      if (modes[i] === 'learn') {
        if (this.model.observe(entry.record, timeMs)) this.dirty = true;
      } else {
        this.drift(entry.record, timeMs);
      }
    }
  }

  private drift(record: FlowRecord, timeMs: number): void {
    const rule = suggestRule(record, timeMs);
    if (rule === null) return;
    const { id: _id, description: _description, ...matchers } = rule;
    const key = JSON.stringify(matchers);
    const last = this.lastAlert.get(key);
    if (last !== undefined && timeMs - last < (this.options.alertIntervalMs ?? 60_000)) {
      this.status.alertsSuppressed++;
      return;
    }
    this.lastAlert.delete(key);
    this.lastAlert.set(key, timeMs);
    if (this.lastAlert.size > DEDUPE_ENTRIES) this.lastAlert.delete(this.lastAlert.keys().next().value!);
    this.status.alerts++;
    this.emitDraft?.(newBehaviourAlert(record, rule));
  }

  /** Status and model, for the admin port's /learn/model. */
  report(): LearnModelReport {
    this.process();
    return {
      ...this.model.toState(),
      status: {
        mode: this.options.mode(),
        stateFile: this.options.stateFile ?? null,
        services: this.model.serviceCount,
        nodes: this.model.nodeCount,
        ...this.status,
      },
    };
  }

  private loadState(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.options.logger?.warn({ err: error, file }, 'cannot read the learned model; starting empty');
      return;
    }
    try {
      this.model.load(JSON.parse(text) as unknown, file);
      this.options.logger?.info({ file, services: this.model.serviceCount, observed: this.model.counters.observed }, 'learned model loaded');
    } catch (error) {
      const reason = error instanceof LearnStateError ? error.message : `${file}: not JSON: ${(error as Error).message}`;
      this.options.logger?.warn({ file, reason }, 'the saved learned model is unreadable; starting empty (it is kept as .bad)');
      try {
        renameSync(file, `${file}.bad`);
      } catch {
        // Keeping the bad copy is a courtesy; starting empty is what matters.
      }
    }
  }

  /** Writes the model if it changed since the last write. */
  async save(): Promise<void> {
    const file = this.options.stateFile;
    if (file === undefined || !this.dirty) return;
    if (this.saving !== null) return this.saving;
    this.dirty = false;
    const text = JSON.stringify(this.model.toState());
    const temporary = `${file}.tmp-${process.pid}`;
    this.saving = mkdir(dirname(file), { recursive: true })
      .then(() => writeFile(temporary, text, { mode: 0o600 }))
      .then(() => rename(temporary, file))
      .then(() => {
        this.status.saves++;
      })
      .catch((error: unknown) => {
        this.dirty = true;
        this.status.saveErrors++;
        this.options.logger?.error({ err: error, file }, 'cannot save the learned model');
      })
      .finally(() => {
        this.saving = null;
      });
    return this.saving;
  }

  /** Synchronous save, for exits that cannot wait. */
  saveSync(): void {
    const file = this.options.stateFile;
    if (file === undefined || !this.dirty) return;
    try {
      mkdirSync(dirname(file), { recursive: true });
      const temporary = `${file}.tmp-${process.pid}`;
      writeFileSync(temporary, JSON.stringify(this.model.toState()), { mode: 0o600 });
      renameSync(temporary, file);
      this.dirty = false;
      this.status.saves++;
    } catch (error) {
      this.status.saveErrors++;
      this.options.logger?.error({ err: error, file }, 'cannot save the learned model');
    }
  }

  async close(_deadlineMs: number): Promise<void> {
    if (this.closed) return;
    this.process();
    this.closed = true;
    if (this.saveTimer !== null) clearInterval(this.saveTimer);
    if (this.saving !== null) await this.saving;
    await this.save();
  }
}

/** The `alert` record for a denial by the default action, with the rule that would allow it. */
export function newBehaviourAlert(record: FlowRecord, rule: LearnedRule): FlowRecordDraft {
  const draft: FlowRecordDraft = {
    type: 'alert',
    flowId: record.flowId,
    direction: record.direction,
    src: record.src,
    dst: record.dst,
    protocol: record.protocol,
    verdict: record.verdict,
    ruleId: record.ruleId,
    policy: record.policy,
    reason: `new behaviour: ${summarize(record)} was denied by the default action; rule ${rule.id} would allow it`,
    suggestion: { rule, yaml: rulesYaml([rule]) },
  };
  if (record.l7 !== undefined) draft.l7 = record.l7;
  return draft;
}

function summarize(record: FlowRecord): string {
  const peer = record.direction === 'ingress' ? record.src : record.dst;
  const who = peer.workload?.namespace !== undefined ? `${peer.workload.pod ?? 'a pod'} in ${peer.workload.namespace}` : peer.ip;
  const where = `${record.direction} ${record.direction === 'ingress' ? 'from' : 'to'} ${who} port ${record.dst.port}`;
  // What was done is the protocol's to say (its plug-in's learn.phrase); the learner names none.
  const what = pluginForRecord(record.protocol)?.learn?.phrase?.({ type: record.type, protocol: record.protocol, l7: record.l7 ?? {} }) ?? null;
  return `${what ?? `${record.protocol} connection`} ${where}`;
}
