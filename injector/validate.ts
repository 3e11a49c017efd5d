// The validating half of the admission webhook: refuses pods and pod templates whose sidewall
// annotations do not validate (every problem in one message, which kubectl shows verbatim), and
// refuses changes to policy annotations by anyone the security team has not listed.
import type { KubeObject, ObjectMeta, PodSpec } from './kube-types.js';
import { ANNOTATION, formatAnnotationIssue, readPodKnobs, type AnnotationIssue } from './annotations.js';
import type { AdmissionRequest } from './admission-review.js';
import type { AnnotationChange, AnnotationChangeAlert, StepAroundAlert } from './alerts.js';
import type { InjectorSettings } from './settings.js';
import { stepAroundApplies } from './mutate.js';
import { formatFinding, stepAroundFindings } from './step-around.js';
import { injectionProblems } from './injection-check.js';

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
  /** Set when the object could step around the sidecar; the caller emits it. */
  stepAroundAlert?: StepAroundAlert;
  /** Which object was checked, for messages: "Pod shop/cart-0", "pod template of Deployment shop/cart". */
  subject: string;
  /** A last line for the message: who can grant an exception. */
  hint?: string;
}

/** Said once under step-around refusals: the exception exists, and it is not the app team's. */
export const STEP_AROUND_HINT =
  'These keep the pod from stepping around the sidewall firewall (README "Security"). If this workload truly needs it, ask your security team: only they can exempt a namespace (chart value stepAround.exemptNamespaces).';

const TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'ReplicationController']);

/** The pod spec an object carries, and its path for messages. */
export function podSpecOf(kind: string, object: KubeObject | undefined): { spec: PodSpec | undefined; path: string } | undefined {
  if (object === undefined || object === null) return undefined;
  if (kind === 'Pod') return { spec: object.spec as PodSpec | undefined, path: 'spec' };
  if (TEMPLATE_KINDS.has(kind)) return { spec: object.spec?.template?.spec, path: 'spec.template.spec' };
  if (kind === 'CronJob') return { spec: object.spec?.jobTemplate?.spec?.template?.spec, path: 'spec.jobTemplate.spec.template.spec' };
  return undefined;
}

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

export function annotationChanges(before: Record<string, string>, after: Record<string, string>, watched: string[], source?: 'label'): AnnotationChange[] {
  const changes: AnnotationChange[] = [];
  for (const annotation of watched) {
    const old = before[annotation];
    const now = after[annotation];
    if (old === now) continue;
    const base = source === 'label' ? { annotation, source } : { annotation };
    if (old === undefined) changes.push({ ...base, change: 'added', after: now });
    else if (now === undefined) changes.push({ ...base, change: 'removed', before: old });
    else changes.push({ ...base, change: 'modified', before: old, after: now });
  }
  return changes;
}

function userMayChangePolicy(request: AdmissionRequest, settings: InjectorSettings): boolean {
  const guard = settings.annotationGuard;
  const user = request.userInfo.username;
  if (user !== undefined && (guard.allowedUsers.includes(user) || guard.trustedCreators.includes(user))) return true;
  return (request.userInfo.groups ?? []).some((group) => guard.allowedGroups.includes(group));
}

/** `sidewall.io/inject: "false"` as annotation or label: the pod is meant to run without the sidecar. */
function optedOut(metadata: ObjectMeta): boolean {
  return metadata.annotations?.[ANNOTATION.inject]?.trim().toLowerCase() === 'false' || metadata.labels?.[ANNOTATION.inject] === 'false';
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

  // The guard applies to CREATE as well as UPDATE: on CREATE every guarded annotation or label
  // present counts as a change (`inject: "true"` opts nothing out and is not one). The
  // controllers in trustedCreators copy templates the guard already checked.
  if (settings.annotationGuard.enabled) {
    const guard = settings.annotationGuard;
    const oldLabels = request.operation === 'UPDATE' ? podMetadataOf(kind, request.oldObject as KubeObject | undefined)?.labels ?? {} : {};
    const changes = [
      ...annotationChanges(oldAnnotations, annotations, guard.annotations),
      ...annotationChanges(oldLabels, metadata.labels ?? {}, guard.labels, 'label'),
    ].filter((change) => !(request.operation === 'CREATE' && change.annotation === ANNOTATION.inject && change.after?.trim().toLowerCase() === 'true'));
    if (changes.length > 0 && !userMayChangePolicy(request, settings)) {
      const user = request.userInfo.username ?? '(unknown)';
      const verb = request.operation === 'CREATE' ? 'set' : 'change';
      const names = changes.map((change) => (change.source === 'label' ? `label ${change.annotation}` : change.annotation)).join(', ');
      const message =
        `${user} may not ${verb} ${names} on ${subject}: ` +
        'sidewall policy annotations are owned by the security team (annotationGuard.allowedUsers / allowedGroups); remove them and ask the security team to set them';
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

  // Ways around the sidecar (README "Security"). Only for objects whose pods get the sidecar; on
  // UPDATE only findings the old object did not have, so objects admitted before stay scalable.
  const specOf = podSpecOf(kind, object);
  if (specOf !== undefined && stepAroundApplies(settings, namespace) && !optedOut(metadata)) {
    const findingsOf = (spec: PodSpec | undefined, objectMeta: ObjectMeta | undefined): string[] => [
      ...stepAroundFindings(spec, {
        proxyUid: settings.proxyUid,
        proxyGid: settings.proxyGid,
        specPath: specOf.path,
        // Templates in `drop` mode are fine: their pods get the drops at injection. Pods are
        // checked anyway (a pod the injector did not drop for, e.g. ephemeral containers).
        rootContainers: settings.stepAround.rootContainers === 'refuse' || kind === 'Pod',
      }).map(formatFinding),
      ...injectionProblems(kind, spec, objectMeta ?? {}, settings, specOf.path),
    ];
    let found = findingsOf(specOf.spec, metadata);
    if (request.operation === 'UPDATE') {
      const oldSpec = podSpecOf(kind, request.oldObject as KubeObject | undefined);
      const before = new Set(findingsOf(oldSpec?.spec, podMetadataOf(kind, request.oldObject as KubeObject | undefined))); // a finding is compared by its whole line
      found = found.filter((line) => !before.has(line));
    }
    if (found.length > 0) {
      verdict.problems.push(...found);
      verdict.hint = STEP_AROUND_HINT;
      verdict.stepAroundAlert = stepAroundAlert(request, namespace, { kind, name }, found, `${subject} could step around the sidecar`);
    }
  }
  verdict.allowed = verdict.problems.length === 0;
  return verdict;
}

/** The alert record's content for a refusal by the step-around checks (either webhook). */
export function stepAroundAlert(request: AdmissionRequest, namespace: string, object: { kind: string; name: string }, findings: string[], message: string): StepAroundAlert {
  return {
    kind: 'step-around',
    operation: request.operation,
    requestUid: request.uid,
    dryRun: request.dryRun === true,
    user: request.userInfo.username ?? '(unknown)',
    groups: request.userInfo.groups ?? [],
    namespace,
    object,
    findings,
    message,
  };
}

export function denialMessage(verdict: ValidationVerdict): string {
  const count = verdict.problems.length;
  const text = `sidewall denied ${verdict.subject} (${count} ${count === 1 ? 'problem' : 'problems'}):\n  - ${verdict.problems.join('\n  - ')}`;
  return verdict.hint === undefined ? text : `${text}\n${verdict.hint}`;
}
