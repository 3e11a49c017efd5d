// `sidewall manifests`: the chart's installation (charts/sidewall/templates) as plain objects,
// rendered from the same values.yaml, so a cluster without Helm gets exactly what the chart
// installs. Keep in step with the templates; test/injector/chart.test.ts compares the two.
import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { CAPTURE_DIR, CONTROLLER_CA_FILE, IDENTITY_TOKEN_FILE } from '../mutate.js';
import { resolveInjectorSettings } from '../settings.js';
import type { WebhookTls } from './tls.js';

type Json = Record<string, unknown>;
type Resources = { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
type LabelSelector = { matchLabels?: Record<string, string>; matchExpressions?: Array<{ key: string; operator: string; values?: string[] }> };

/** The chart's values (charts/sidewall/values.yaml); see values.schema.json for the rules. */
export interface ChartValues {
  image: { repository: string; tag: string; pullPolicy: string };
  imagePullSecrets: Array<{ name: string }>;
  webhook: {
    replicas: number;
    port: number;
    logLevel: string;
    failurePolicy: string;
    timeoutSeconds: number;
    reinvocationPolicy: string;
    namespaceSelector: LabelSelector;
    objectSelector: LabelSelector;
    validation: { failurePolicy: string; timeoutSeconds: number };
    resources: Resources;
    podAntiAffinity: 'preferred' | 'required';
    podDisruptionBudget: { minAvailable: number | string };
    nodeSelector: Record<string, string>;
    tolerations: Json[];
    priorityClassName: string;
  };
  tls: {
    caValidityDays: number;
    certValidityDays: number;
    certManager: { enabled: boolean; issuerRef: { name?: string; kind?: string; group?: string }; duration: string; renewBefore: string };
  };
  controller: {
    enabled: boolean;
    port: number;
    healthPort: number;
    logLevel: string;
    audience: string;
    tokenExpirationSeconds: number;
    /** PEM; empty: the webhook CA (required with cert-manager). */
    caBundle: string;
    resources: Resources;
  };
  sidecar: {
    nativeSidecar: boolean;
    proxyUid: number;
    proxyGid: number;
    redirectDns: boolean;
    iptablesBackend: string;
    rewriteProbes: boolean;
    excludeInboundPorts: number[];
    excludeOutboundPorts: number[];
    excludeOutboundCidrs: string[];
    resources: Resources;
    initResources: Resources;
    /** NODE_OPTIONS of sidewall-proxy (V8 heap sizes only); empty: none. */
    nodeOptions: string;
    /** Prepended to sidewall-proxy's command (the CAP_NET_ADMIN launcher); [] for none. */
    proxyLauncher: string[];
    config: Json;
  };
  clusterRules: Json[];
  injection: { namespaces: string[] };
  annotationGuard: { enabled: boolean; annotations: string[]; allowedUsers: string[]; allowedGroups: string[]; labels: string[]; trustedCreators: string[] };
  stepAround: { enabled: boolean; rootContainers: 'drop' | 'refuse'; dropNetRaw: boolean; exemptNamespaces: string[] };
  rbac: { policyAdminGroup: string };
}

export class ChartNotFoundError extends Error {
  readonly code = 'SIDEWALL_CHART_NOT_FOUND';
  constructor(from: string) {
    super(`cannot find charts/sidewall/values.yaml above ${from}; the sidewall package ships it next to dist/`);
    this.name = 'ChartNotFoundError';
  }
}

/** charts/sidewall of this package, found from the running module (src/ under tests, dist/ when built). */
export function chartDirectory(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, 'charts', 'sidewall');
    if (existsSync(join(candidate, 'values.yaml'))) return candidate;
    if (dirname(dir) === dir) throw new ChartNotFoundError(start);
  }
}

export function chartMetadata(): { version: string; appVersion: string; name: string } {
  const chart = parseYaml(readFileSync(join(chartDirectory(), 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string; name: string };
  return chart;
}

export function defaultChartValues(): ChartValues {
  return parseYaml(readFileSync(join(chartDirectory(), 'values.yaml'), 'utf8')) as ChartValues;
}

function isPlainObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Helm's merge of values files: maps merge key by key, everything else replaces. */
export function mergeValues<T>(base: T, override: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(override)) return (override === undefined ? base : override) as T;
  const out: Json = { ...base };
  for (const [key, value] of Object.entries(override)) out[key] = key in out ? mergeValues(out[key], value) : value;
  return out as T;
}

/** Applies one `--set a.b.c=value` (value read as a YAML scalar, like Helm's --set). */
export function setValue<T>(values: T, assignment: string): T {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new Error(`--set '${assignment}': expected key.path=value`);
  const path = assignment.slice(0, eq).split('.');
  const raw = assignment.slice(eq + 1);
  const value: unknown = raw === '' ? '' : parseYaml(raw);
  let override: unknown = value;
  for (let i = path.length - 1; i >= 0; i -= 1) override = { [path[i]!]: override };
  return mergeValues(values, override);
}

export interface RenderOptions {
  namespace: string;
  /** Like a Helm release name; names are derived from it as the chart's helpers do. */
  releaseName?: string;
  /** TLS material; required unless values.tls.certManager.enabled. */
  tls?: WebhookTls;
  /** Add the Namespace object itself (plain manifests need it; Helm has --create-namespace). */
  includeNamespace?: boolean;
}

export class ManifestValuesError extends Error {
  readonly code = 'SIDEWALL_MANIFESTS_VALUES';
  constructor(detail: string) {
    super(`invalid values: ${detail}`);
    this.name = 'ManifestValuesError';
  }
}

export function fullName(releaseName: string): string {
  const name = releaseName.includes('sidewall') ? releaseName : `${releaseName}-sidewall`;
  return name.slice(0, 40).replace(/-+$/, '');
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

/** The injector settings document, as the chart's "sidewall.injectorSettings" helper writes it. */
export function injectorSettingsDocument(values: ChartValues, name: string, appVersion: string): Json {
  const document: Json = {
    image: `${values.image.repository}:${values.image.tag === '' ? appVersion : values.image.tag}`,
    imagePullPolicy: values.image.pullPolicy,
    nativeSidecar: values.sidecar.nativeSidecar,
    proxyUid: values.sidecar.proxyUid,
    proxyGid: values.sidecar.proxyGid,
    redirectDns: values.sidecar.redirectDns,
    iptablesBackend: values.sidecar.iptablesBackend,
    rewriteProbes: values.sidecar.rewriteProbes,
    excludeInboundPorts: values.sidecar.excludeInboundPorts,
    excludeOutboundPorts: values.sidecar.excludeOutboundPorts,
    excludeOutboundCidrs: values.sidecar.excludeOutboundCidrs,
    proxyResources: values.sidecar.resources,
    initResources: values.sidecar.initResources,
    proxyNodeOptions: values.sidecar.nodeOptions,
    proxyLauncher: values.sidecar.proxyLauncher,
    sidecarConfigMap: `${name}-sidecar-config`,
    clusterRulesConfigMap: `${name}-cluster-rules`,
    annotationGuard: values.annotationGuard,
    stepAround: values.stepAround,
  };
  const capture = (values.sidecar.config as Json).capture as Json | null | undefined;
  if (isPlainObject(capture)) document.capture = { maxBytes: capture.maxBytes ?? '8MiB' };
  if (values.controller.enabled) {
    document.identity = { audience: values.controller.audience, expirationSeconds: values.controller.tokenExpirationSeconds, caConfigMap: controllerCaName(name) };
  }
  return document;
}

/** The ConfigMap (one per injected namespace) with the CA that verifies the identity controller. */
export function controllerCaName(name: string): string {
  return `${name}-controller-ca`;
}

/** host:port of the identity stream as sidecars reach it: a name in the webhook certificate. */
export function controllerAddress(service: string, namespace: string, port: number): string {
  return `${service}.${namespace}.svc:${port}`;
}

/** The sidecar config every injected pod mounts, as the chart's "sidewall.sidecarConfig" helper writes it. */
export function sidecarConfigDocument(values: ChartValues, service: string, namespace: string): Json {
  const config: Json = { ...values.sidecar.config, clusterRules: '/etc/sidewall/cluster/rules.yaml', podInfo: '/etc/sidewall/pod' };
  // A capture block: its files go to the volume the injector mounts for it.
  if (isPlainObject(config.capture)) config.capture = { ...config.capture, dir: CAPTURE_DIR };
  if (values.controller.enabled) {
    config.identity = { controller: controllerAddress(service, namespace, values.controller.port), tokenFile: IDENTITY_TOKEN_FILE, caFile: CONTROLLER_CA_FILE };
  }
  return config;
}

/** The PEM the sidecars verify the controller with: controller.caBundle, else the webhook CA. */
function controllerCaPem(values: ChartValues, tls: WebhookTls | undefined): string {
  if (values.controller.caBundle !== '') {
    try {
      new X509Certificate(values.controller.caBundle);
    } catch (err) {
      throw new ManifestValuesError(
        `controller.caBundle is not a PEM certificate (${(err as Error).message}); pass it in a --values file as a block scalar (caBundle: |), --set folds its lines`,
      );
    }
    return values.controller.caBundle;
  }
  if (tls === undefined) {
    throw new ManifestValuesError(
      'controller.enabled with tls.certManager.enabled needs controller.caBundle: the PEM of the CA that issues the webhook certificate (in a --values file), or controller.enabled=false',
    );
  }
  return tls.caCert;
}

export function renderInstallation(values: ChartValues, options: RenderOptions): Json[] {
  const chart = chartMetadata();
  const namespace = options.namespace;
  const name = fullName(options.releaseName ?? 'sidewall');
  const service = `${name}-webhook`;
  const image = `${values.image.repository}:${values.image.tag === '' ? chart.appVersion : values.image.tag}`;
  const labels = {
    'app.kubernetes.io/name': 'sidewall',
    'app.kubernetes.io/instance': options.releaseName ?? 'sidewall',
    'app.kubernetes.io/version': chart.appVersion,
    'app.kubernetes.io/managed-by': 'sidewall-manifests',
    'app.kubernetes.io/part-of': 'sidewall',
  };
  const selector = { 'app.kubernetes.io/name': 'sidewall', 'app.kubernetes.io/instance': options.releaseName ?? 'sidewall', 'app.kubernetes.io/component': 'webhook' };
  const meta = (objectName: string, objectNamespace?: string): Json => ({ name: objectName, ...(objectNamespace !== undefined ? { namespace: objectNamespace } : {}), labels: { ...labels } });

  const settingsDocument = injectorSettingsDocument(values, name, chart.appVersion);
  try {
    resolveInjectorSettings(settingsDocument, 'values');
  } catch (err) {
    throw new ManifestValuesError((err as Error).message);
  }
  const settingsText = stringifyYaml(settingsDocument);
  const sidecarConfig = sidecarConfigDocument(values, service, namespace);
  const certManager = values.tls.certManager.enabled;
  if (!certManager && options.tls === undefined) throw new ManifestValuesError('TLS material is required unless tls.certManager.enabled');
  const controller = values.controller.enabled;
  const controllerCa = controller ? controllerCaPem(values, certManager ? undefined : options.tls) : undefined;

  const objects: Json[] = [];
  if (options.includeNamespace === true) {
    objects.push({ apiVersion: 'v1', kind: 'Namespace', metadata: meta(namespace) });
  }
  objects.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(service, namespace), automountServiceAccountToken: false });
  if (controller) {
    objects.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: meta(`${name}-controller`),
      rules: [
        { apiGroups: [''], resources: ['pods', 'namespaces', 'services'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      ],
    });
    objects.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: meta(`${name}-controller`),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${name}-controller` },
      subjects: [{ kind: 'ServiceAccount', name: service, namespace }],
    });
  }

  const namespaces = [...new Set([namespace, ...values.injection.namespaces])];
  for (const target of namespaces) {
    objects.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: meta(`${name}-policy-admin`, target),
      rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [`${name}-cluster-rules`, `${name}-sidecar-config`], verbs: ['get', 'list', 'watch', 'update', 'patch'] }],
    });
    objects.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: meta(`${name}-policy-admin`, target),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${name}-policy-admin` },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: values.rbac.policyAdminGroup }],
    });
  }

  objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(`${name}-injector`, namespace), data: { 'injector.yaml': settingsText } });
  for (const target of namespaces) {
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(`${name}-sidecar-config`, target), data: { 'config.yaml': stringifyYaml(sidecarConfig) } });
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(`${name}-cluster-rules`, target), data: { 'rules.yaml': stringifyYaml(values.clusterRules) } });
    if (controllerCa !== undefined) {
      objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(controllerCaName(name), target), data: { 'ca.crt': controllerCa.trim() + '\n' } });
    }
  }

  const antiAffinityTerm = { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } };
  const probe = (periodSeconds: number): Json => ({ httpGet: { path: '/healthz', port: 'https', scheme: 'HTTPS' }, periodSeconds });
  const containerSecurity = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };
  const tlsMount = { name: 'tls', mountPath: '/etc/sidewall/tls', readOnly: true };
  const controllerContainers: Json[] = [];
  const controllerVolumes: Json[] = [];
  if (controller) {
    const { port, healthPort } = values.controller;
    controllerContainers.push({
      name: 'controller',
      image,
      imagePullPolicy: values.image.pullPolicy,
      command: ['sidewall'],
      args: [
        'controller', '--port', String(port), '--health-port', String(healthPort),
        '--tls-cert', '/etc/sidewall/tls/tls.crt', '--tls-key', '/etc/sidewall/tls/tls.key',
        '--audience', values.controller.audience, '--log-level', values.controller.logLevel,
      ],
      ports: [
        { name: 'identity', containerPort: port, protocol: 'TCP' },
        { name: 'controller-health', containerPort: healthPort, protocol: 'TCP' },
      ],
      readinessProbe: { httpGet: { path: '/readyz', port: 'controller-health' }, periodSeconds: 5 },
      livenessProbe: { httpGet: { path: '/healthz', port: 'controller-health' }, periodSeconds: 10, failureThreshold: 3 },
      resources: values.controller.resources,
      securityContext: containerSecurity,
      volumeMounts: [tlsMount, { name: 'controller-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }],
    });
    // The pod keeps automountServiceAccountToken: false (the webhook container holds no API
    // credential); this is the in-cluster client's layout, for the controller container only.
    controllerVolumes.push({
      name: 'controller-api-access',
      projected: {
        defaultMode: 420,
        sources: [
          { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
      },
    });
  }
  objects.push({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { ...meta(service, namespace), labels: { ...labels, 'app.kubernetes.io/component': 'webhook' } },
    spec: {
      replicas: values.webhook.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: {
          labels: { ...selector, 'sidewall.io/inject': 'false' },
          annotations: { 'checksum/injector-settings': createHash('sha256').update(settingsText).digest('hex') },
        },
        spec: {
          serviceAccountName: service,
          automountServiceAccountToken: false,
          ...(values.imagePullSecrets.length > 0 ? { imagePullSecrets: values.imagePullSecrets } : {}),
          ...(values.webhook.priorityClassName !== '' ? { priorityClassName: values.webhook.priorityClassName } : {}),
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          affinity: {
            podAntiAffinity:
              values.webhook.podAntiAffinity === 'required'
                ? { requiredDuringSchedulingIgnoredDuringExecution: [antiAffinityTerm] }
                : { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: antiAffinityTerm }] },
          },
          ...(Object.keys(values.webhook.nodeSelector).length > 0 ? { nodeSelector: values.webhook.nodeSelector } : {}),
          ...(values.webhook.tolerations.length > 0 ? { tolerations: values.webhook.tolerations } : {}),
          containers: [
            {
              name: 'webhook',
              image,
              imagePullPolicy: values.image.pullPolicy,
              command: ['sidewall'],
              args: [
                'webhook', '--tls-cert', '/etc/sidewall/tls/tls.crt', '--tls-key', '/etc/sidewall/tls/tls.key',
                '--port', String(values.webhook.port), '--settings', '/etc/sidewall/injector/injector.yaml', '--log-level', values.webhook.logLevel,
              ],
              ports: [{ name: 'https', containerPort: values.webhook.port, protocol: 'TCP' }],
              readinessProbe: probe(5),
              livenessProbe: { ...probe(10), failureThreshold: 3 },
              resources: values.webhook.resources,
              securityContext: containerSecurity,
              volumeMounts: [
                tlsMount,
                { name: 'injector-settings', mountPath: '/etc/sidewall/injector', readOnly: true },
              ],
            },
            ...controllerContainers,
          ],
          volumes: [
            { name: 'tls', secret: { secretName: `${service}-tls` } },
            { name: 'injector-settings', configMap: { name: `${name}-injector` } },
            ...controllerVolumes,
          ],
        },
      },
    },
  });
  objects.push({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(service, namespace),
    spec: { minAvailable: values.webhook.podDisruptionBudget.minAvailable, selector: { matchLabels: selector } },
  });
  objects.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(service, namespace),
    spec: {
      type: 'ClusterIP',
      selector,
      ports: [
        { name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' },
        ...(controller ? [{ name: 'identity', port: values.controller.port, targetPort: 'identity', protocol: 'TCP', appProtocol: 'grpc' }] : []),
      ],
    },
  });

  let caBundle: string | undefined;
  const webhookAnnotations: Json = {};
  if (certManager) {
    webhookAnnotations['cert-manager.io/inject-ca-from'] = `${namespace}/${service}`;
    let issuerRef: Json = values.tls.certManager.issuerRef;
    if (Object.keys(issuerRef).length === 0) {
      objects.push({ apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: meta(`${name}-selfsigned`, namespace), spec: { selfSigned: {} } });
      objects.push({
        apiVersion: 'cert-manager.io/v1',
        kind: 'Certificate',
        metadata: meta(`${name}-ca`, namespace),
        spec: { isCA: true, commonName: 'sidewall-webhook-ca', secretName: `${name}-ca`, duration: '87600h', privateKey: { algorithm: 'ECDSA', size: 256 }, issuerRef: { name: `${name}-selfsigned`, kind: 'Issuer' } },
      });
      objects.push({ apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: meta(`${name}-ca`, namespace), spec: { ca: { secretName: `${name}-ca` } } });
      issuerRef = { name: `${name}-ca`, kind: 'Issuer' };
    }
    objects.push({
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: meta(service, namespace),
      spec: {
        secretName: `${service}-tls`,
        duration: values.tls.certManager.duration,
        renewBefore: values.tls.certManager.renewBefore,
        dnsNames: [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`],
        privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
        issuerRef,
      },
    });
  } else {
    const tls = options.tls!;
    caBundle = b64(tls.caCert);
    objects.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta(`${service}-tls`, namespace),
      type: 'kubernetes.io/tls',
      data: { 'ca.crt': caBundle, 'tls.crt': b64(tls.tlsCert), 'tls.key': b64(tls.tlsKey) },
    });
  }
  const clientConfig = (path: string): Json => ({
    service: { name: service, namespace, path, port: 443 },
    ...(caBundle !== undefined ? { caBundle } : {}),
  });
  const webhookMeta = (objectName: string): Json => ({ ...meta(objectName), ...(certManager ? { annotations: webhookAnnotations } : {}) });
  objects.push({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: webhookMeta(`${name}-injector`),
    webhooks: [
      {
        name: 'inject.sidewall.io',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: values.webhook.failurePolicy,
        timeoutSeconds: values.webhook.timeoutSeconds,
        reinvocationPolicy: values.webhook.reinvocationPolicy,
        matchPolicy: 'Equivalent',
        clientConfig: clientConfig('/mutate'),
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
        namespaceSelector: values.webhook.namespaceSelector,
        objectSelector: values.webhook.objectSelector,
      },
    ],
  });
  objects.push({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: webhookMeta(`${name}-validator`),
    webhooks: [
      {
        name: 'validate.sidewall.io',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: values.webhook.validation.failurePolicy,
        timeoutSeconds: values.webhook.validation.timeoutSeconds,
        matchPolicy: 'Equivalent',
        clientConfig: clientConfig('/validate'),
        rules: [
          // pods/ephemeralcontainers: `kubectl debug` adds containers to a running pod through it.
          { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods', 'pods/ephemeralcontainers', 'replicationcontrollers'], scope: 'Namespaced' },
          { apiGroups: ['apps'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['deployments', 'statefulsets', 'daemonsets', 'replicasets'], scope: 'Namespaced' },
          { apiGroups: ['batch'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['jobs', 'cronjobs'], scope: 'Namespaced' },
        ],
        namespaceSelector: values.webhook.namespaceSelector,
      },
    ],
  });
  return objects;
}

/** Multi-document YAML, one object per document, as `kubectl apply -f -` reads it. */
export function toYamlStream(objects: Json[]): string {
  // No anchors/aliases for objects used twice (a selector, a mount): readers of an installation
  // expect every field written out, and some tools do not resolve aliases.
  return objects.map((object) => '---\n' + stringifyYaml(object, { lineWidth: 0, aliasDuplicateObjects: false })).join('');
}
