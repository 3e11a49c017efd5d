// Public surface of the injector: the pure mutation (used by the webhook and by `npm run demo`),
// the validation, the AdmissionReview handling and the HTTPS server.
export type { Pod, Container, Probe, KubeObject } from './kube-types.js';
export type { JsonPatchOp } from './json-patch.js';
export { ANNOTATION, STATUS_INJECTED, MODES } from './annotations.js';
export {
  defaultInjectorSettings,
  resolveInjectorSettings,
  loadInjectorSettings,
  InjectorSettingsError,
  type InjectorSettings,
  type AnnotationGuardSettings,
  type IdentityCredentialSettings,
} from './settings.js';
export {
  mutatePod,
  initArgs,
  injectedContainers,
  resolveContainerEnv,
  INIT_CONTAINER,
  PROXY_CONTAINER,
  SIDECAR_CONFIG_FILE,
  CLUSTER_RULES_DIR,
  POD_INFO_DIR,
  IDENTITY_TOKEN_FILE,
  CONTROLLER_CA_FILE,
  LEARN_STATE_DIR,
  type MutationResult,
} from './mutate.js';
export { APP_PROBES_ENV, appProbePath, type AppProbe, type AppProbes } from './probes.js';
export { validateAdmission, denialMessage, type RuleSourceChecker, type RuleIssueLike, type ValidationVerdict } from './validate.js';
export * from './admission-review.js';
export { handleMutation, handleValidation } from './handlers.js';
export { createAlertWriter, rfc3339Nano, type AlertSink, type AnnotationChangeAlert, type StepAroundAlert, type WebhookAlert, type AlertRecord } from './alerts.js';
export { WebhookServer, CertificateLoadError, type WebhookServerOptions } from './server.js';
export { createWebhookMetrics, type WebhookMetrics, type RefusingCheck } from './metrics.js';
