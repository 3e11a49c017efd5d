// From a parsed AdmissionRequest to the AdmissionResponse, for /mutate and /validate.
import type { Pod } from './kube-types.js';
import { requireObject, type AdmissionRequest, type AdmissionResponse } from './admission-review.js';
import { mutatePod } from './mutate.js';
import type { InjectorSettings } from './settings.js';
import { STEP_AROUND_HINT, denialMessage, stepAroundAlert, validateAdmission, type RuleSourceChecker } from './validate.js';
import type { AlertSink } from './alerts.js';
import type { RefusingCheck } from './metrics.js';

export interface MutationOutcome {
  response: AdmissionResponse;
  /** What happened, for the log line. */
  outcome: 'injected' | 'skipped' | 'ignored' | 'refused';
  reason?: string;
}

/** `alerts` receives a record for each pod refused as a way around the sidecar. */
export function handleMutation(request: AdmissionRequest, settings: InjectorSettings, alerts?: AlertSink): MutationOutcome {
  const base: AdmissionResponse = { uid: request.uid, allowed: true };
  // The webhook configuration only sends pod CREATEs; anything else is answered "allowed,
  // unchanged" so a misconfiguration never blocks the cluster.
  if (request.kind.kind !== 'Pod' || request.resource.resource !== 'pods' || (request.subResource ?? '') !== '' || request.operation !== 'CREATE') {
    return { response: base, outcome: 'ignored', reason: `${request.operation} ${request.kind.kind}${request.subResource ? '/' + request.subResource : ''}` };
  }
  const pod = requireObject(request) as Pod;
  const result = mutatePod(pod, settings, request.namespace !== undefined ? { namespace: request.namespace } : {});
  if (result.refused !== undefined) {
    const problems = result.refused;
    const subject = `Pod ${request.namespace ?? pod.metadata?.namespace ?? ''}/${request.name ?? pod.metadata?.name ?? pod.metadata?.generateName ?? ''}`;
    const message = denialMessage({ allowed: false, problems, subject, hint: STEP_AROUND_HINT });
    const namespace = request.namespace ?? pod.metadata?.namespace ?? '';
    alerts?.(stepAroundAlert(request, namespace, { kind: 'Pod', name: request.name ?? pod.metadata?.name ?? pod.metadata?.generateName ?? '' }, problems, `${subject} could step around the sidecar`));
    return { response: { uid: request.uid, allowed: false, status: { code: 403, reason: 'Forbidden', message } }, outcome: 'refused', reason: problems.join('; ') };
  }
  const response: AdmissionResponse = { ...base };
  if (result.warnings.length > 0) response.warnings = result.warnings;
  if (result.skipped !== undefined) {
    response.auditAnnotations = { injection: `skipped: ${result.skipped}` };
    return { response, outcome: 'skipped', reason: result.skipped };
  }
  response.patchType = 'JSONPatch';
  response.patch = Buffer.from(JSON.stringify(result.patch)).toString('base64');
  response.auditAnnotations = { injection: 'injected' };
  return { response, outcome: 'injected' };
}

export interface ValidationOutcome {
  response: AdmissionResponse;
  problems: string[];
  /** The checks that refused (empty when allowed), for the metrics. */
  refusedBy: RefusingCheck[];
}

export function handleValidation(request: AdmissionRequest, settings: InjectorSettings, checkRules: RuleSourceChecker, alerts: AlertSink): ValidationOutcome {
  if (request.operation === 'CREATE' || request.operation === 'UPDATE') requireObject(request);
  if (request.operation === 'UPDATE') requireObject(request, 'oldObject');
  const verdict = validateAdmission(request, settings, checkRules);
  if (verdict.alert !== undefined) alerts(verdict.alert);
  if (verdict.stepAroundAlert !== undefined) alerts(verdict.stepAroundAlert);
  if (verdict.allowed) return { response: { uid: request.uid, allowed: true }, problems: [], refusedBy: [] };
  const refusedBy: RefusingCheck[] = [];
  if (verdict.stepAroundAlert !== undefined) refusedBy.push('step-around');
  if (verdict.alert !== undefined) refusedBy.push('annotation-guard');
  const counted = (verdict.stepAroundAlert?.findings.length ?? 0) + (verdict.alert !== undefined ? 1 : 0);
  if (verdict.problems.length > counted) refusedBy.push('annotations');
  return {
    response: { uid: request.uid, allowed: false, status: { code: 403, reason: 'Forbidden', message: denialMessage(verdict) } },
    problems: verdict.problems,
    refusedBy,
  };
}
