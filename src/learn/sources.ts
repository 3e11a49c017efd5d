// Inputs of `sidewall policy learn`: a running sidecar's model (admin port, GET /learn/model), a
// saved model (the state file), or flow records as JSON lines (schema/flow-record.schema.json),
// e.g. the sidecar's stdout or `sidewall observe -o json`.
import { FlowLineError, LearnFetchError } from './errors.js';
import type { LearnModel, ObservedRecord } from './model.js';

export interface ModelSource {
  /** A file name, '-' for standard input, or a URL: named in every problem. */
  name: string;
  text: string;
}

export interface ReadSummary {
  /** Flow records read (learned from or not). */
  records: number;
  /** Saved models merged. */
  models: number;
  /** Lines that were not flow records. */
  skipped: number;
  /** The first few of those, as FlowLineErrors (file:line: why). */
  problems: FlowLineError[];
}

const MAX_PROBLEMS = 5;
const DIRECTIONS = new Set(['ingress', 'egress', 'intra']);

function isEndpoint(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const e = value as Record<string, unknown>;
  return typeof e.ip === 'string' && typeof e.port === 'number';
}

/** Why a parsed line is not a flow record the model can read, or null when it is one. */
function recordProblem(value: unknown): string | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const r = value as Record<string, unknown>;
  if (typeof r.type !== 'string') return "has no 'type' (is this a flow record?)";
  if (typeof r.direction !== 'string' || !DIRECTIONS.has(r.direction)) return "has no valid 'direction'";
  if (!isEndpoint(r.src) || !isEndpoint(r.dst)) return "has no valid 'src' and 'dst' ({ip, port})";
  if (typeof r.protocol !== 'string') return "has no 'protocol'";
  if (r.l7 !== undefined && (r.l7 === null || typeof r.l7 !== 'object')) return "'l7' is not an object";
  return null;
}

function isSavedModel(value: unknown): boolean {
  return value !== null && typeof value === 'object' && (value as Record<string, unknown>).kind === 'sidewall-learn-model';
}

/** Feeds every source into the model. A saved model is one JSON document; anything else is read as JSON lines. */
export function readModelSources(model: LearnModel, sources: readonly ModelSource[]): ReadSummary {
  const summary: ReadSummary = { records: 0, models: 0, skipped: 0, problems: [] };
  for (const source of sources) {
    const trimmed = source.text.trimStart();
    if (trimmed.startsWith('{')) {
      let whole: unknown;
      try {
        whole = JSON.parse(trimmed);
      } catch {
        whole = undefined; // not one document: JSON lines
      }
      if (isSavedModel(whole)) {
        model.load(whole, source.name);
        summary.models++;
        continue;
      }
    }
    const lines = source.text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '') continue;
      let problem: string | null;
      let value: unknown;
      try {
        value = JSON.parse(line);
        problem = recordProblem(value);
      } catch (error) {
        problem = `not JSON (${(error as Error).message})`;
      }
      if (problem !== null) {
        summary.skipped++;
        if (summary.problems.length < MAX_PROBLEMS) summary.problems.push(new FlowLineError(source.name, i + 1, problem));
        continue;
      }
      summary.records++;
      model.observe(value as ObservedRecord & { time?: string });
    }
  }
  return summary;
}

/** The model of a running sidecar: `base` is its admin address (http://HOST:15000 or HOST:PORT). */
export async function fetchModel(base: string, timeoutMs = 5000): Promise<{ name: string; data: unknown }> {
  const root = /^https?:\/\//.test(base) ? base.replace(/\/+$/, '') : `http://${base}`;
  const url = root.endsWith('/learn/model') ? root : `${root}/learn/model`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new LearnFetchError(url, `cannot reach the sidecar's admin port: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
  if (response.status === 404) throw new LearnFetchError(url, 'the sidecar serves no learned model (404): is it a sidewall proxy of this version?');
  if (!response.ok) throw new LearnFetchError(url, `HTTP ${response.status}`);
  try {
    return { name: url, data: (await response.json()) as unknown };
  } catch (error) {
    throw new LearnFetchError(url, `the answer is not JSON: ${(error as Error).message}`);
  }
}
