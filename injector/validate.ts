// The validating half of the admission webhook: refuses pods and pod templates whose sidewall
// annotations do not validate (every problem in one message, which kubectl shows verbatim), and
// refuses changes to policy annotations by anyone the security team has not listed.
import type { KubeObject, ObjectMeta } from './kube-types.js';
import { ANNOTATION, formatAnnotationIssue, readPodKnobs, type AnnotationIssue } from './annotations.js';
import type { AdmissionRequest } from './admission-review.js';
import type { AnnotationChange, AnnotationChangeAlert } from './alerts.js';
import type { InjectorSettings } from './settings.js';

/** The shape of src/policy's RuleIssue, restated so the injector does not depend on its internals. */
export interface RuleIssueLike {
  source: string;
  index: number | null;
  id?: string;
  field: string;
  message: string;
}

export type RuleSourceChecker = (text: string, source: string) => RuleIssueLike[];

export interface ValidationVerdict {
  allowed: boolean;
  /** Every problem, one per line, for the denial message. */
  problems: string[];
  /** Set when a guarded annotation change was refused; the caller emits it. */
  alert?: AnnotationChangeAlert;
  /** Which object was checked, for messages: "Pod shop/cart-0", "pod template of Deployment shop/cart". */
  subject: string;
}

const TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'ReplicationController']);

/** The pod metadata an object carries: its own for a Pod, its pod template's for a workload. */
export function podMetadataOf(kind: string, object: KubeObject | undefined): ObjectMeta | undefined {
  if (object === undefined) return undefined;
  if (kind === 'Pod') return object.metadata ?? {};
  if (TEMPLATE_KINDS.has(kind)) return object.spec?.template?.metadata ?? {};
  if (kind === 'CronJob') return object.spec?.jobTemplate?.spec?.template?.metadata ?? {};
  return undefined;
}

// Same "rules[3].peer.cidr: message" form as `sidewall policy check`, so users see one format.
function describeRuleIssue(issue: RuleIssueLike): string {
  let where = issue.index === null ? '' : `rules[${issue.index}]`;
  if (issue.field !== '') where += where === '' ? issue.field : `.${issue.field}`;
  const id = issue.id === undefined ? '' : ` (rule id "${issue.id}")`;
  return `${ANNOTATION.rules}: ${where === '' ? '' : where + ': '}${issue.message}${id}`;
}

export function annotationChanges(before: Record<string, string>, after: Record<string, string>, watched: string[]): AnnotationChange[] {
  const changes: AnnotationChange[] = [];
  for (const annotation of watched) {
    const old = before[annotation];
    const now = after[annotation];
    if (old === now) continue;
    if (old === undefined) changes.push({ annotation, change: 'added', after: now });
    else if (now === undefined) changes.push({ annotation, change: 'removed', before: old });
    else changes.push({ annotation, change: 'modified', before: old, after: now });
  }
  return changes;
}

function userMayChangePolicy(request: AdmissionRequest, settings: InjectorSettings): boolean {
  const guard = settings.annotationGuard;
  if (request.userInfo.username !== undefined && guard.allowedUsers.includes(request.userInfo.username)) return true;
  return (request.userInfo.groups ?? []).some((group) => guard.allowedGroups.includes(group));
}

export function validateAdmission(request: AdmissionRequest, settings: InjectorSettings, checkRules: RuleSourceChecker): ValidationVerdict {
  const kind = request.kind.kind;
  const object = request.object as KubeObject | undefined;
  const namespace = request.namespace ?? object?.metadata?.namespace ?? '';
  const name = request.name ?? object?.metadata?.name ?? object?.metadata?.generateName ?? '';
  const subject = kind === 'Pod' ? `Pod ${namespace}/${name}` : `the pod template of ${kind} ${namespace}/${name}`;
  const verdict: ValidationVerdict = { allowed: true, problems: [], subject };
  if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return verdict;
  const metadata = podMetadataOf(kind, object);
  if (metadata === undefined) return verdict;
  const annotations = metadata.annotations ?? {};
  const oldAnnotations = request.operation === 'UPDATE' ? podMetadataOf(kind, request.oldObject as KubeObject | undefined)?.annotations ?? {} : {};

  // On UPDATE only what changed is checked: an object admitted under older rules of this webhook
  // must stay scalable and deletable.
  const changed = (annotation: string): boolean => request.operation === 'CREATE' || oldAnnotations[annotation] !== annotations[annotation];

  const rulesText = annotations[ANNOTATION.rules];
  if (rulesText !== undefined && changed(ANNOTATION.rules)) {
    let issues: RuleIssueLike[];
    try {
      issues = checkRules(rulesText, `${ANNOTATION.rules} of ${subject}`);
    } catch (err) {
      issues = [{ source: ANNOTATION.rules, index: null, field: '', message: `could not be checked: ${(err as Error).message}` }];
    }
    for (const issue of issues) verdict.problems.push(describeRuleIssue(issue));
  }
  const knobIssues: AnnotationIssue[] = [];
  readPodKnobs(annotations, knobIssues);
  for (const issue of knobIssues) if (changed(issue.annotation)) verdict.problems.push(formatAnnotationIssue(issue));

  if (request.operation === 'UPDATE' && settings.annotationGuard.enabled) {
    const changes = annotationChanges(oldAnnotations, annotations, settings.annotationGuard.annotations);
    if (changes.length > 0 && !userMayChangePolicy(request, settings)) {
      const user = request.userInfo.username ?? '(unknown)';
      const message =
        `${user} may not change ${changes.map((change) => change.annotation).join(', ')} on ${subject}: ` +
        'sidewall policy annotations are owned by the security team (annotationGuard.allowedUsers / allowedGroups)';
      verdict.problems.push(message);
      verdict.alert = {
        operation: request.operation,
        requestUid: request.uid,
        dryRun: request.dryRun === true,
        user,
        groups: request.userInfo.groups ?? [],
        namespace,
        object: { kind, name },
        changes,
        message,
      };
    }
  }
  verdict.allowed = verdict.problems.length === 0;
  return verdict;
}

export function denialMessage(verdict: ValidationVerdict): string {
  const count = verdict.problems.length;
  return `sidewall denied ${verdict.subject} (${count} ${count === 1 ? 'problem' : 'problems'}):\n  - ${verdict.problems.join('\n  - ')}`;
}
