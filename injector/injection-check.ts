// The validating webhook's check that a pod which looks injected was injected by us. The
// mutating webhook leaves a pod alone that already carries `sidewall.io/status: injected`, a
// container named sidewall-init/sidewall-proxy or a sidewall-* volume (idempotency), so without
// this check any pod author could skip the firewall by writing one of those themselves — or
// bring their own "sidewall-proxy" with other flags. What is compared is what decides whether
// the firewall holds: images, commands, the proxy's user and capabilities, its environment and
// the volumes its config and rules come from. Fields the API server defaults are not compared.
import type { Container, ObjectMeta, PodSpec, Volume } from './kube-types.js';
import { ANNOTATION, STATUS_INJECTED, readPodKnobs, type AnnotationIssue } from './annotations.js';
import {
  CAPTURE_DIR,
  CLUSTER_RULES_DIR,
  CONTROLLER_CA_DIR,
  IDENTITY_TOKEN_DIR,
  LEARN_STATE_DIR,
  INIT_CONTAINER,
  POD_INFO_DIR,
  PROXY_CONTAINER,
  SIDECAR_CONFIG_DIR,
  SIDECAR_CONFIG_FILE,
  VOLUME,
  initArgs,
  podExclusions,
  proxyCommand,
} from './mutate.js';
import { APP_PROBES_ENV } from './probes.js';

/** The proxy's identity variables and the downward-API field each must come from (mutate.ts). */
const IDENTITY_FIELDS: Readonly<Record<string, string>> = {
  POD_NAME: 'metadata.name',
  POD_NAMESPACE: 'metadata.namespace',
  POD_IP: 'status.podIP',
  POD_IPS: 'status.podIPs',
  POD_SERVICE_ACCOUNT: 'spec.serviceAccountName',
};

function fieldPathOf(variable: { value?: unknown; valueFrom?: unknown }): string | undefined {
  if (variable.value !== undefined || !isObject(variable.valueFrom) || !isObject(variable.valueFrom.fieldRef)) return undefined;
  const path = variable.valueFrom.fieldRef.fieldPath;
  return typeof path === 'string' ? path : undefined;
}
import type { InjectorSettings } from './settings.js';

const OWN_VOLUMES: ReadonlySet<string> = new Set(Object.values(VOLUME));
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The objects of a list field; the API server sends schema-valid objects, this never throws on others. */
function objects<T>(list: unknown): T[] {
  return Array.isArray(list) ? (list.filter(isObject) as T[]) : [];
}

function containersOf(spec: PodSpec): Container[] {
  return [...objects<Container>(spec.initContainers), ...objects<Container>(spec.containers)];
}

/** Whether an object carries anything that makes the mutating webhook skip it as injected. */
function looksInjected(spec: PodSpec, metadata: ObjectMeta): string[] {
  const signs: string[] = [];
  if (metadata.annotations?.[ANNOTATION.status] !== undefined) signs.push(`the annotation ${ANNOTATION.status}`);
  for (const container of containersOf(spec)) if (container.name === INIT_CONTAINER || container.name === PROXY_CONTAINER) signs.push(`a container named ${container.name}`);
  for (const volume of objects<Volume>(spec.volumes)) if (OWN_VOLUMES.has(volume.name)) signs.push(`a volume named ${volume.name}`);
  return signs;
}

function checkConfigMapVolume(volumes: Volume[], name: string, configMap: string, problems: string[]): void {
  const volume = volumes.find((candidate) => candidate.name === name);
  if (volume === undefined) { problems.push(`volume ${name} is missing`); return; }
  // Only the name: the API server adds defaultMode.
  const source = volume.configMap as { name?: unknown } | undefined;
  if (source?.name !== configMap || Object.keys(volume).length !== 2) problems.push(`volume ${name} is not ConfigMap ${configMap}`);
}

/**
 * Problems with a Pod that claims to be injected (kind Pod), or with a pod template that would
 * keep its pods from being injected (other kinds). Empty when all is as the injector writes it.
 */
export function injectionProblems(kind: string, spec: PodSpec | undefined, metadata: ObjectMeta, settings: InjectorSettings, specPath: string): string[] {
  if (spec === undefined || spec === null || typeof spec !== 'object') return [];
  const signs = looksInjected(spec, metadata);
  // A hostNetwork pod is not injected; the step-around check refuses it (or it is exempt).
  if (spec.hostNetwork === true) return [];
  if (signs.length === 0) {
    // The mutating webhook sees every pod this webhook sees except those labelled
    // sidewall.io/inject=false (guarded, and not checked here): a pod without the injection
    // reached the API server without it, e.g. with the mutating webhook's configuration removed.
    return kind === 'Pod'
      ? [`${specPath}: the pod was not injected with the sidewall firewall (the sidewall mutating webhook did not see it); fix: check the MutatingWebhookConfiguration, or have the security team opt the pod out with ${ANNOTATION.inject}: "false"`]
      : [];
  }
  if (kind !== 'Pod') {
    // A template never carries the injection: its pods would be taken as injected and get none.
    return [`${specPath}: ${signs.join(', ')}: names the sidewall injector reserves; the pods of this template would be taken as already injected and run without the firewall; fix: remove ${signs.length === 1 ? 'it' : 'them'}`];
  }
  const problems: string[] = [];
  if (metadata.annotations?.[ANNOTATION.status] !== STATUS_INJECTED) problems.push(`annotation ${ANNOTATION.status} is not "${STATUS_INJECTED}"`);
  const containers = containersOf(spec);
  const init = containers.find((container) => container.name === INIT_CONTAINER);
  const proxy = containers.find((container) => container.name === PROXY_CONTAINER);
  if (init === undefined) {
    problems.push(`${INIT_CONTAINER} is missing`);
  } else {
    const knobIssues: AnnotationIssue[] = [];
    const expectedArgs = initArgs(settings, podExclusions(settings, readPodKnobs(metadata.annotations ?? {}, knobIssues)));
    if (init.image !== settings.image) problems.push(`${INIT_CONTAINER} runs image ${String(init.image)}, not ${settings.image}`);
    if (!same(init.command, ['sidewall']) || !same(init.args, expectedArgs)) problems.push(`${INIT_CONTAINER}'s command is not the one the injector writes for this pod's annotations`);
    if (objects<Container>(spec.initContainers)[0]?.name !== INIT_CONTAINER) problems.push(`${INIT_CONTAINER} is not the first init container`);
  }
  if (proxy === undefined) {
    problems.push(`${PROXY_CONTAINER} is missing`);
  } else {
    const context = isObject(proxy.securityContext) ? proxy.securityContext : {};
    if (proxy.image !== settings.image) problems.push(`${PROXY_CONTAINER} runs image ${String(proxy.image)}, not ${settings.image}`);
    if (!same(proxy.command, proxyCommand(settings)) || !same(proxy.args, ['proxy', '--config', SIDECAR_CONFIG_FILE])) problems.push(`${PROXY_CONTAINER}'s command is not the one the injector writes`);
    if (context.runAsUser !== settings.proxyUid || context.runAsGroup !== settings.proxyGid) problems.push(`${PROXY_CONTAINER} does not run as ${settings.proxyUid}:${settings.proxyGid}`);
    if (context.privileged === true || !same(isObject(context.capabilities) ? context.capabilities.add : undefined, ['NET_ADMIN'])) problems.push(`${PROXY_CONTAINER}'s capabilities are not the injector's (add: [NET_ADMIN] only)`);
    const allowedEnv = new Set(['POD_NAME', 'POD_NAMESPACE', 'POD_IP', 'POD_IPS', 'POD_SERVICE_ACCOUNT', APP_PROBES_ENV, 'NODE_OPTIONS']);
    for (const variable of objects<{ name?: unknown; value?: unknown; valueFrom?: unknown }>(proxy.env)) {
      if (typeof variable.name !== 'string' || !allowedEnv.has(variable.name)) problems.push(`${PROXY_CONTAINER} has environment variable ${String(variable.name)}, which the injector never sets`);
      else if (variable.name === 'NODE_OPTIONS' && variable.value !== settings.proxyNodeOptions) problems.push(`${PROXY_CONTAINER}'s NODE_OPTIONS is not the injector's`);
      else if (variable.name in IDENTITY_FIELDS && fieldPathOf(variable) !== IDENTITY_FIELDS[variable.name]) {
        // A literal POD_NAMESPACE or POD_SERVICE_ACCOUNT would let a pod choose which cluster
        // rules (appliesTo) its sidecar applies: only the downward API's own value is accepted.
        problems.push(`${PROXY_CONTAINER}'s ${variable.name} is not the downward API's ${IDENTITY_FIELDS[variable.name]}`);
      }
    }
    if (proxy.envFrom !== undefined) problems.push(`${PROXY_CONTAINER} has envFrom, which the injector never sets`);
    const expectedMounts: Record<string, string> = {
      [VOLUME.config]: SIDECAR_CONFIG_DIR,
      [VOLUME.clusterRules]: CLUSTER_RULES_DIR,
      [VOLUME.podInfo]: POD_INFO_DIR,
      [VOLUME.tmp]: '/tmp',
      [VOLUME.learn]: LEARN_STATE_DIR,
    };
    if (settings.capture !== undefined) expectedMounts[VOLUME.captures] = CAPTURE_DIR;
    if (settings.identity !== undefined) {
      expectedMounts[VOLUME.identityToken] = IDENTITY_TOKEN_DIR;
      if (settings.identity.caConfigMap !== undefined) expectedMounts[VOLUME.controllerCa] = CONTROLLER_CA_DIR;
    }
    const mounts = objects<{ name: string; mountPath: string; subPath?: unknown }>(proxy.volumeMounts).map((mount) => `${mount.name}=${mount.mountPath}${mount.subPath === undefined ? '' : ':' + String(mount.subPath)}`).sort();
    if (!same(mounts, Object.entries(expectedMounts).map(([name, path]) => `${name}=${path}`).sort())) problems.push(`${PROXY_CONTAINER}'s volume mounts are not the injector's`);
  }
  const volumes = objects<Volume>(spec.volumes);
  checkConfigMapVolume(volumes, VOLUME.config, settings.sidecarConfigMap, problems);
  checkConfigMapVolume(volumes, VOLUME.clusterRules, settings.clusterRulesConfigMap, problems);
  if (problems.length === 0) return [];
  return [
    `${specPath}: the pod carries ${signs.join(', ')} but was not injected by sidewall (${problems.join('; ')}); it would run without the firewall; fix: remove the sidewall-* containers, volumes and the ${ANNOTATION.status} annotation and let the webhook inject the pod`,
  ];
}
