// Test helpers: run an AdmissionReview through the handlers exactly as the server does, apply
// the returned JSON Patch with an independent RFC 6902 implementation (fast-json-patch), and
// check the result against the Kubernetes OpenAPI schema (kubernetes-models).
import { expect } from 'vitest';
import jsonpatch from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { handleMutation, parseAdmissionReview, type AdmissionResponse, type Container, type InjectorSettings, type Pod } from '../../injector/index.js';

export interface AdmittedPod {
  response: AdmissionResponse;
  pod: Pod;
  patch: unknown[];
}

export function decodePatch(response: AdmissionResponse): unknown[] {
  if (response.patch === undefined) return [];
  expect(response.patchType).toBe('JSONPatch');
  return JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as unknown[];
}

export function applyReviewPatch(original: unknown, response: AdmissionResponse): Pod {
  const patch = decodePatch(response) as jsonpatch.Operation[];
  // validateOperation=true: an op against a path that does not exist throws, as in the API server.
  const result = jsonpatch.applyPatch(structuredClone(original), patch, true, false);
  return result.newDocument as Pod;
}

export function assertValidPod(pod: Pod): void {
  // Throws with the failing JSON path when the pod does not match the core/v1 Pod schema.
  new PodModel(pod as ConstructorParameters<typeof PodModel>[0]).validate();
}

export function admitPod(review: Record<string, unknown>, settings: InjectorSettings): AdmittedPod {
  const request = parseAdmissionReview(JSON.stringify(review));
  const { response } = handleMutation(request, settings);
  expect(response.uid).toBe(request.uid);
  expect(response.allowed).toBe(true);
  const pod = applyReviewPatch(request.object, response);
  assertValidPod(pod);
  return { response, pod, patch: decodePatch(response) };
}

export function findContainer(containers: Container[] | undefined, name: string): Container {
  const container = containers?.find((candidate) => candidate.name === name);
  if (container === undefined) throw new Error(`no container ${name} in [${(containers ?? []).map((c) => c.name).join(', ')}]`);
  return container;
}

export function flagValue(args: string[] | undefined, flag: string): string | undefined {
  const index = (args ?? []).indexOf(flag);
  return index === -1 ? undefined : args![index + 1];
}
