// Alert records for policy annotation changes the webhook refused. They are flow-record-shaped
// (PRODUCT.md "Flow records": time with nanoseconds, seq, type "alert") and go to stdout as one
// JSON line each, so the same log pipeline that collects sidecar records collects them.
import type { Writable } from 'node:stream';

const wallClockAtStartNs = BigInt(Date.now()) * 1_000_000n;
const monotonicAtStartNs = process.hrtime.bigint();

/** Current UTC time as RFC 3339 with nanoseconds, e.g. 2026-11-23T15:14:16.123456789Z. */
export function rfc3339Nano(nowNs: bigint = wallClockAtStartNs + (process.hrtime.bigint() - monotonicAtStartNs)): string {
  const ms = Number(nowNs / 1_000_000n);
  const fraction = (nowNs % 1_000_000_000n).toString().padStart(9, '0');
  return new Date(ms).toISOString().slice(0, 19) + '.' + fraction + 'Z';
}

export interface AnnotationChange {
  /** The annotation's name, or the label's when `source` is "label". */
  annotation: string;
  source?: 'label';
  change: 'added' | 'removed' | 'modified';
  before?: string;
  after?: string;
}

/** What every webhook alert says of the admission request it refused. */
interface AdmissionAlert {
  operation: string;
  requestUid: string;
  dryRun: boolean;
  user: string;
  groups: string[];
  namespace: string;
  /** The object refused: a Pod, or the workload whose pod template it was. */
  object: { kind: string; name: string };
  message: string;
}

export interface AnnotationChangeAlert extends AdmissionAlert {
  changes: AnnotationChange[];
}

/** A pod or pod template refused because it could step around the sidecar (README "Security"). */
export interface StepAroundAlert extends AdmissionAlert {
  kind: 'step-around';
  /** Each way around, as in the denial message: "container app: spec.containers[0]…: why; fix: …". */
  findings: string[];
}

export type WebhookAlert = AnnotationChangeAlert | StepAroundAlert;

export interface AlertRecord extends Omit<AdmissionAlert, 'object'> {
  time: string;
  seq: number;
  type: 'alert';
  verdict: 'denied';
  alert: { kind: 'policy-annotation-change' | 'step-around'; source: 'sidewall-webhook' };
  object: { kind: string; namespace: string; name: string };
  pod?: { namespace: string; name: string };
  /** policy-annotation-change: the guarded annotations and labels, before and after. */
  changes?: AnnotationChange[];
  /** step-around: each way around the sidecar the object had. */
  findings?: string[];
}

const VALUE_LIMIT = 2048;

function clip(value: string | undefined): string | undefined {
  if (value === undefined || value.length <= VALUE_LIMIT) return value;
  return value.slice(0, VALUE_LIMIT) + `…(${value.length - VALUE_LIMIT} more characters)`;
}

export type AlertSink = (alert: WebhookAlert) => void;

/** Writes each alert as a JSON line; seq counts from 1 per webhook process. */
export function createAlertWriter(out: Writable = process.stdout): AlertSink & { readonly written: () => number } {
  let seq = 0;
  const sink = (alert: WebhookAlert): void => {
    seq += 1;
    const { object, ...rest } = alert;
    const common = {
      time: rfc3339Nano(),
      seq,
      type: 'alert' as const,
      verdict: 'denied' as const,
      object: { kind: object.kind, namespace: alert.namespace, name: object.name },
    };
    let record: AlertRecord;
    // Every record starts with time, seq and type, as the sidecar's flow records do.
    if ('kind' in rest && rest.kind === 'step-around') {
      const { kind: _kind, findings, ...fields } = rest;
      record = { ...common, alert: { kind: 'step-around', source: 'sidewall-webhook' }, ...fields, findings: findings.map((finding) => clip(finding)!) };
    } else {
      const annotationAlert = rest as Omit<AnnotationChangeAlert, 'object'>;
      record = {
        ...common,
        alert: { kind: 'policy-annotation-change', source: 'sidewall-webhook' },
        ...annotationAlert,
        changes: annotationAlert.changes.map((change) => ({ ...change, before: clip(change.before), after: clip(change.after) })),
      };
    }
    if (alert.object.kind === 'Pod') record.pod = { namespace: alert.namespace, name: alert.object.name };
    out.write(JSON.stringify(record) + '\n');
  };
  return Object.assign(sink, { written: () => seq });
}
