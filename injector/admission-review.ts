// AdmissionReview admission.k8s.io/v1 as the API server sends it to a webhook and expects it
// back: https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/
// Everything the server receives is parsed here; each way a request can be malformed has its own
// error class with a stable code and the HTTP status the server answers with.

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface GroupVersionKind { group: string; version: string; kind: string }
export interface GroupVersionResource { group: string; version: string; resource: string }

export interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export type AdmissionOperation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  requestKind?: GroupVersionKind;
  name?: string;
  namespace?: string;
  operation: AdmissionOperation;
  userInfo: UserInfo;
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
  options?: unknown;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code?: number; message?: string; reason?: string };
  patch?: string;
  patchType?: 'JSONPatch';
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

export abstract class AdmissionRequestError extends Error {
  abstract readonly code: string;
  abstract readonly httpStatus: number;
}

export class AdmissionBodyNotJsonError extends AdmissionRequestError {
  readonly code = 'SIDEWALL_ADMISSION_NOT_JSON';
  readonly httpStatus = 400;
  constructor(detail: string) {
    super(`the request body is not JSON (${detail}); the webhook expects an AdmissionReview ${ADMISSION_API_VERSION}`);
    this.name = 'AdmissionBodyNotJsonError';
  }
}

export class AdmissionBodyTooLargeError extends AdmissionRequestError {
  readonly code = 'SIDEWALL_ADMISSION_TOO_LARGE';
  readonly httpStatus = 413;
  constructor(readonly limitBytes: number) {
    super(`the request body exceeds ${limitBytes} bytes, the most an AdmissionReview can plausibly need`);
    this.name = 'AdmissionBodyTooLargeError';
  }
}

export class AdmissionMediaTypeError extends AdmissionRequestError {
  readonly code = 'SIDEWALL_ADMISSION_MEDIA_TYPE';
  readonly httpStatus = 415;
  constructor(readonly contentType: string) {
    super(`content-type '${contentType}' is not supported; send application/json`);
    this.name = 'AdmissionMediaTypeError';
  }
}

export class AdmissionVersionError extends AdmissionRequestError {
  readonly code = 'SIDEWALL_ADMISSION_VERSION';
  readonly httpStatus = 400;
  constructor(readonly apiVersion: string) {
    super(
      `AdmissionReview apiVersion '${apiVersion}' is not supported; this webhook speaks ${ADMISSION_API_VERSION} ` +
        `(set admissionReviewVersions: ["v1"] in the webhook configuration)`,
    );
    this.name = 'AdmissionVersionError';
  }
}

export class AdmissionKindError extends AdmissionRequestError {
  readonly code = 'SIDEWALL_ADMISSION_KIND';
  readonly httpStatus = 400;
  constructor(readonly kind: string) {
    super(`expected kind 'AdmissionReview', got '${kind}'`);
    this.name = 'AdmissionKindError';
  }
}

export class AdmissionFieldError extends AdmissionRequestError {
  readonly code = 'SIDEWALL_ADMISSION_FIELD';
  readonly httpStatus = 400;
  constructor(readonly field: string, problem: string) {
    super(`AdmissionReview ${field} ${problem}`);
    this.name = 'AdmissionFieldError';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses and checks the envelope; the object itself is checked by the handler that uses it. */
export function parseAdmissionReview(body: Buffer | string): AdmissionRequest {
  let document: unknown;
  try {
    document = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    throw new AdmissionBodyNotJsonError((err as Error).message);
  }
  if (!isRecord(document)) throw new AdmissionBodyNotJsonError('top level is not an object');
  const apiVersion = typeof document.apiVersion === 'string' ? document.apiVersion : '(missing)';
  if (document.kind !== 'AdmissionReview') throw new AdmissionKindError(typeof document.kind === 'string' ? document.kind : '(missing)');
  if (apiVersion !== ADMISSION_API_VERSION) throw new AdmissionVersionError(apiVersion);
  const request = document.request;
  if (!isRecord(request)) throw new AdmissionFieldError('request', 'is missing');
  if (typeof request.uid !== 'string' || request.uid === '') throw new AdmissionFieldError('request.uid', 'is missing');
  if (!isRecord(request.kind) || typeof request.kind.kind !== 'string') throw new AdmissionFieldError('request.kind', 'is missing');
  if (!isRecord(request.resource) || typeof request.resource.resource !== 'string') throw new AdmissionFieldError('request.resource', 'is missing');
  const operation = request.operation;
  if (operation !== 'CREATE' && operation !== 'UPDATE' && operation !== 'DELETE' && operation !== 'CONNECT') {
    throw new AdmissionFieldError('request.operation', `is '${String(operation)}', expected CREATE, UPDATE, DELETE or CONNECT`);
  }
  const userInfo = isRecord(request.userInfo) ? request.userInfo : {};
  return {
    ...(request as object),
    uid: request.uid,
    kind: request.kind as unknown as GroupVersionKind,
    resource: request.resource as unknown as GroupVersionResource,
    operation,
    userInfo: {
      username: typeof userInfo.username === 'string' ? userInfo.username : undefined,
      groups: Array.isArray(userInfo.groups) ? userInfo.groups.filter((group): group is string => typeof group === 'string') : [],
    },
  } as AdmissionRequest;
}

/** The object of a request that must carry one (CREATE/UPDATE), checked to be a JSON object. */
export function requireObject(request: AdmissionRequest, field: 'object' | 'oldObject' = 'object'): Record<string, unknown> {
  const value = request[field];
  if (!isRecord(value)) throw new AdmissionFieldError(`request.${field}`, value === undefined || value === null ? 'is missing' : 'is not an object');
  return value;
}

export function reviewResponse(response: AdmissionResponse): AdmissionReviewResponse {
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}
