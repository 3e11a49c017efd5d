// The Helm chart and `sidewall manifests`. There is no helm binary here, so: the default values
// validate against values.schema.json (and bad ones do not), every .Values path a template names
// exists, the manifests output validates against the Kubernetes schema, carries working TLS, and
// has the same objects as the chart's templates.
import { X509Certificate, createPublicKey } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { Ajv } from 'ajv';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { describe, expect, it, vi } from 'vitest';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { ValidatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration';
import { chartDirectory, defaultChartValues, injectorSettingsDocument, mergeValues, renderInstallation, setValue, type ChartValues } from '../../injector/install/render.js';
import { generateWebhookTls } from '../../injector/install/tls.js';
import { CHART_FORMATS } from '../../injector/install/values-schema.js';
import { CONTROLLER_CA_FILE, IDENTITY_TOKEN_FILE, defaultInjectorSettings, mutatePod, resolveInjectorSettings, type Pod } from '../../injector/index.js';
import { CAPTURE_DIR, captureVolumeSizeLimit } from '../../injector/mutate.js';
import { injectionProblems } from '../../injector/injection-check.js';
import { run as runManifests } from '../../src/cli/manifests.js';
import { parseConfig } from '../../src/config/index.js';
import { checkRuleSource } from '../../src/policy/index.js';
import { podCreateReview, replicaSetPod } from './fixtures.js';
import { admitPod, findContainer, flagValue } from './helpers.js';

type Json = Record<string, any>;
const chart = chartDirectory();
const schema = JSON.parse(readFileSync(join(chart, 'values.schema.json'), 'utf8')) as object;
// The file as Helm reads it, with the formats sidewall's own validation adds (Helm skips those).
const validateValues = (() => {
  const ajv = new Ajv({ allErrors: true, strict: false });
  for (const [name, check] of Object.entries(CHART_FORMATS)) ajv.addFormat(name, { type: 'string', validate: (s: string) => check(s) === null });
  return ajv.compile(schema);
})();
const templates = readdirSync(join(chart, 'templates')).map((file) => ({ file, text: readFileSync(join(chart, 'templates', file), 'utf8') }));

const models: Record<string, new (data: any) => { validate(): void }> = {
  Deployment, Service, ServiceAccount, ConfigMap, Secret, Namespace, PodDisruptionBudget, Role, RoleBinding, ClusterRole, ClusterRoleBinding,
  MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};

describe('charts/sidewall values', () => {
  it('the default values.yaml validates against values.schema.json', () => {
    const ok = validateValues(defaultChartValues());
    expect(validateValues.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it.each([
    ['webhook.failurePolicy=Sometimes'],
    ['webhook.timeoutSeconds=45'],
    ['webhook.replicas=0'],
    ['sidecar.excludeOutboundCidrs=["10.0.0.0/33"]'],
    ['sidecar.config.mode=enforce'],
    ['injection.namespaces=["Shop_Namespace"]'],
    ['image.pullPolicy=Sometimes'],
    ['webhook.replica=3'],
    ['controller.tokenExpirationSeconds=300'],
    ['controller.port=70000'],
    ['controller.caBundle=not-a-pem'],
    ['sidecar.config.identity={"controller":"elsewhere:1"}'],
    ['tls.certManager.enabled=true'],
    ['sidecar.nodeOptions="--require=/tmp/x.js"'],
    ['stepAround.rootContainers=ignore'],
    ['stepAround.exemptNamespaces=["Net_Ops"]'],
    ['stepAround.allowNetAdmin=true'],
    ['sidecar.proxyLauncher=[""]'],
    ['sidecar.config.mode=protec'],
    ['sidecar.config.proxy={"adminPort":0}'],
    ['sidecar.config.rules=[{"id":"a","action":"pass"}]'],
    ['clusterRules=[{"id":"a","action":"permit"}]'],
    ['clusterRules=[{"id":"a","action":"deny","peer":{"cidr":"10.0.0.1/8"}}]'],
  ])('values.schema.json rejects %s', (assignment) => {
    expect(validateValues(setValue(defaultChartValues(), assignment))).toBe(false);
  });

  it('sidecar.nodeOptions with heap sizes validates and reaches the injector settings', () => {
    const values = setValue(defaultChartValues(), 'sidecar.nodeOptions="--max-semi-space-size=1"');
    expect(validateValues(values)).toBe(true);
    expect(resolveInjectorSettings(injectorSettingsDocument(values, 'sidewall', '0.1.0'), 'values').proxyNodeOptions).toBe('--max-semi-space-size=1');
  });

  it('stepAround, the guard on labels and trusted creators, and the proxy launcher reach the injector settings', () => {
    const values = mergeValues(defaultChartValues(), { stepAround: { rootContainers: 'refuse', exemptNamespaces: ['netops'] }, annotationGuard: { trustedCreators: ['system:serviceaccount:argo-rollouts:argo-rollouts'] } });
    expect(validateValues(values), JSON.stringify(validateValues.errors)).toBe(true);
    const settings = resolveInjectorSettings(injectorSettingsDocument(values, 'sidewall', '0.1.0'), 'values');
    expect(settings.stepAround).toEqual({ enabled: true, rootContainers: 'refuse', dropNetRaw: true, exemptNamespaces: ['netops'] });
    expect(settings.annotationGuard.trustedCreators).toEqual(['system:serviceaccount:argo-rollouts:argo-rollouts']);
    expect(settings.annotationGuard.labels).toEqual(['sidewall.io/inject']);
    expect(settings.proxyLauncher).toEqual(['/usr/local/bin/sidewall-caps', '--inh-caps=+net_admin', '--ambient-caps=+net_admin', '--']);
    // The chart's defaults are the injector's own defaults.
    expect(resolveInjectorSettings(injectorSettingsDocument(defaultChartValues(), 'sidewall', '0.1.0'), 'values')).toMatchObject({
      stepAround: defaultInjectorSettings().stepAround, proxyLauncher: defaultInjectorSettings().proxyLauncher, annotationGuard: { trustedCreators: defaultInjectorSettings().annotationGuard.trustedCreators },
    });
  });

  it('controller.enabled=false frees sidecar.config.identity for your own controller; cert-manager takes a caBundle', () => {
    const own = setValue(setValue(defaultChartValues(), 'controller.enabled=false'), 'sidecar.config.identity={"controller":"ids.example:15012"}');
    expect(validateValues(own), JSON.stringify(validateValues.errors)).toBe(true);
    const managed = mergeValues(setValue(defaultChartValues(), 'tls.certManager.enabled=true'), { controller: { caBundle: testCa().caCert } });
    expect(validateValues(managed), JSON.stringify(validateValues.errors)).toBe(true);
  });

  it('every .Values path a template names exists in values.yaml', () => {
    const values = defaultChartValues() as unknown as Json;
    const missing: string[] = [];
    for (const { file, text } of templates) {
      for (const match of text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
        let node: unknown = values;
        for (const key of match[1]!.slice(1).split('.')) {
          if (typeof node !== 'object' || node === null || !(key in node)) { missing.push(`${file}: .Values${match[1]}`); break; }
          node = (node as Json)[key];
        }
      }
    }
    expect(missing).toEqual([]);
    // The check is not vacuous: the templates use many values.
    expect(templates.map((t) => [...t.text.matchAll(/\.Values\./g)].length).reduce((a, b) => a + b, 0)).toBeGreaterThan(40);
  });

  it('every template has balanced actions: each if/range/with/define is closed by an end', () => {
    for (const { file, text } of templates) {
      const withoutComments = text.replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, '');
      expect(withoutComments.split('{{').length, `${file}: {{ vs }}`).toBe(withoutComments.split('}}').length);
      let depth = 0;
      for (const match of withoutComments.matchAll(/\{\{-?\s*(if|range|with|define|end)\b/g)) {
        depth += match[1] === 'end' ? -1 : 1;
        expect(depth, `${file}: an end without an opening action`).toBeGreaterThanOrEqual(0);
      }
      expect(depth, `${file}: unclosed action`).toBe(0);
    }
  });

  it('the chart default image is what `npm run image` builds: localhost/sidewall at the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const chartYaml = parseYaml(readFileSync(join(chart, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    expect(chartYaml.appVersion).toBe(pkg.version);
    expect(defaultChartValues().image.repository).toBe('localhost/sidewall');
    expect(defaultInjectorSettings().image).toBe(`localhost/sidewall:${pkg.version}`);
    const script = readFileSync(new URL('../../scripts/build-image.sh', import.meta.url), 'utf8');
    expect(script).toContain('image=localhost/sidewall:$version');
  });
});

let sharedTls: ReturnType<typeof generateWebhookTls> | undefined;
/** A CA and serving certificate for sidewall-webhook.sidewall-system (openssl, made once). */
function testCa(): ReturnType<typeof generateWebhookTls> {
  sharedTls ??= generateWebhookTls('sidewall-webhook', 'sidewall-system', { ca: 30, cert: 30 });
  return sharedTls;
}

function render(values: ChartValues = defaultChartValues()): Json[] {
  const tls = values.tls.certManager.enabled ? undefined : generateWebhookTls('sidewall-webhook', 'sidewall-system', { ca: 30, cert: 30 });
  return renderInstallation(values, { namespace: 'sidewall-system', tls, includeNamespace: true }) as Json[];
}

function find(objects: Json[], kind: string, name?: string, namespace?: string): Json {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name) && (namespace === undefined || o.metadata.namespace === namespace));
  if (found === undefined) throw new Error(`no ${kind} ${namespace ?? ''}/${name ?? ''}`);
  return found;
}

describe('sidewall manifests', () => {
  const values = setValue(defaultChartValues(), 'injection.namespaces=["shop","ops"]');
  const objects = render(values);

  it('every object validates against the Kubernetes schema', () => {
    for (const object of objects) {
      const Model = models[object.kind];
      expect(Model, `model for ${object.kind}`).toBeDefined();
      new Model!(object).validate();
    }
  });

  it('has the objects the chart templates define (cert-manager off)', () => {
    const chartKinds = new Set<string>();
    for (const { file, text } of templates) {
      if (file === 'cert-manager.yaml') continue;
      for (const match of text.matchAll(/^kind: (\w+)$/gm)) chartKinds.add(match[1]!);
    }
    const manifestKinds = new Set(objects.map((o) => o.kind as string));
    manifestKinds.delete('Namespace');
    expect([...manifestKinds].sort()).toEqual([...chartKinds].sort());
  });

  it('runs two webhook replicas spread over nodes, with a PodDisruptionBudget', () => {
    const deployment = find(objects, 'Deployment');
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    expect(find(objects, 'PodDisruptionBudget').spec.minAvailable).toBe(1);
    expect(deployment.spec.template.metadata.labels['sidewall.io/inject']).toBe('false');
    const args = deployment.spec.template.spec.containers[0].args as string[];
    expect(args.slice(0, 5)).toEqual(['webhook', '--tls-cert', '/etc/sidewall/tls/tls.crt', '--tls-key', '/etc/sidewall/tls/tls.key']);
  });

  it('targets labelled namespaces with v1 reviews, Fail, a timeout and the opt-out selector', () => {
    const mutating = find(objects, 'MutatingWebhookConfiguration').webhooks[0];
    expect(mutating.namespaceSelector).toEqual({ matchLabels: { 'sidewall-injection': 'enabled' } });
    expect(mutating.objectSelector.matchExpressions[0]).toEqual({ key: 'sidewall.io/inject', operator: 'NotIn', values: ['false'] });
    expect(mutating.admissionReviewVersions).toEqual(['v1']);
    expect(mutating).toMatchObject({ failurePolicy: 'Fail', timeoutSeconds: 10, reinvocationPolicy: 'Never', sideEffects: 'None' });
    const validating = find(objects, 'ValidatingWebhookConfiguration').webhooks[0];
    const resources = (validating.rules as Array<{ resources: string[] }>).flatMap((r) => r.resources);
    expect(resources.sort()).toEqual(['cronjobs', 'daemonsets', 'deployments', 'jobs', 'pods', 'pods/ephemeralcontainers', 'replicasets', 'replicationcontrollers', 'statefulsets']);
  });

  it('carries a CA bundle that verifies the serving certificate, whose key matches and whose names are the Service', () => {
    const secret = find(objects, 'Secret');
    const decode = (key: string) => Buffer.from(secret.data[key] as string, 'base64').toString();
    const ca = new X509Certificate(decode('ca.crt'));
    const serving = new X509Certificate(decode('tls.crt'));
    expect(serving.verify(ca.publicKey)).toBe(true);
    expect(serving.subjectAltName).toContain('DNS:sidewall-webhook.sidewall-system.svc');
    expect(() => createSecureContext({ cert: decode('tls.crt'), key: decode('tls.key') })).not.toThrow();
    expect(createPublicKey(decode('tls.key')).export({ format: 'pem', type: 'spki' })).toEqual(serving.publicKey.export({ format: 'pem', type: 'spki' }));
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      expect(find(objects, kind).webhooks[0].clientConfig.caBundle).toBe(secret.data['ca.crt']);
    }
  });

  it('the injector settings ConfigMap is valid and pods injected with it mount ConfigMaps that exist in their namespace', () => {
    const settingsText = find(objects, 'ConfigMap', 'sidewall-injector', 'sidewall-system').data['injector.yaml'] as string;
    const settings = resolveInjectorSettings(parseYaml(settingsText), 'injector.yaml');
    expect(settings.image).toBe('localhost/sidewall:0.1.0');
    const result = mutatePod(replicaSetPod() as Pod, settings);
    const volumes = result.patch.flatMap((op) => (op.op === 'add' && op.path === '/spec/volumes/-' ? [op.value as Json] : []));
    const configMapNames = volumes.filter((v) => v.configMap !== undefined).map((v) => v.configMap.name as string);
    expect(configMapNames.sort()).toEqual(['sidewall-cluster-rules', 'sidewall-controller-ca', 'sidewall-sidecar-config']);
    for (const name of configMapNames) expect(() => find(objects, 'ConfigMap', name, 'shop')).not.toThrow();
    const sidecarConfig = parseYaml(find(objects, 'ConfigMap', 'sidewall-sidecar-config', 'ops').data['config.yaml'] as string) as Json;
    expect(sidecarConfig).toMatchObject({ mode: 'monitor', defaultAction: 'deny', clusterRules: '/etc/sidewall/cluster/rules.yaml', podInfo: '/etc/sidewall/pod' });
  });

  it('the sidecar config and cluster rules it ships are accepted by the sidecar\'s own loaders', () => {
    const withRules = setValue(values, 'clusterRules=[{"id":"deny-metadata","action":"deny","peer":{"cidr":"169.254.169.254/32"}},{"id":"rest","action":"pass"}]');
    const rendered = render(withRules);
    const configText = find(rendered, 'ConfigMap', 'sidewall-sidecar-config', 'shop').data['config.yaml'] as string;
    const config = parseConfig(parseYaml(configText), 'config.yaml');
    expect(config.clusterRules).toBe('/etc/sidewall/cluster/rules.yaml');
    const rulesText = find(rendered, 'ConfigMap', 'sidewall-cluster-rules', 'shop').data['rules.yaml'] as string;
    expect(checkRuleSource(rulesText, 'rules.yaml', { tier: 'cluster' })).toEqual([]);
    expect((parseYaml(rulesText) as unknown[]).length).toBe(2);
  });

  it('with cert-manager: Certificate and issuers instead of a Secret, caBundle injected by cainjector', () => {
    const managed = render(mergeValues(setValue(defaultChartValues(), 'tls.certManager.enabled=true'), { controller: { caBundle: testCa().caCert } }));
    expect(find(managed, 'ConfigMap', 'sidewall-controller-ca', 'sidewall-system').data['ca.crt']).toBe(testCa().caCert.trim() + '\n');
    expect(managed.some((o) => o.kind === 'Secret')).toBe(false);
    const certificate = find(managed, 'Certificate', 'sidewall-webhook');
    expect(certificate.spec.secretName).toBe(find(managed, 'Deployment').spec.template.spec.volumes[0].secret.secretName);
    expect(certificate.spec.issuerRef).toEqual({ name: 'sidewall-ca', kind: 'Issuer' });
    const mutating = find(managed, 'MutatingWebhookConfiguration');
    expect(mutating.metadata.annotations['cert-manager.io/inject-ca-from']).toBe('sidewall-system/sidewall-webhook');
    expect(mutating.webhooks[0].clientConfig.caBundle).toBeUndefined();
  });

  it('values files merge like Helm: maps key by key, lists replace', () => {
    const merged = mergeValues(defaultChartValues(), { sidecar: { nativeSidecar: false }, annotationGuard: { allowedGroups: ['secops'] } });
    expect(merged.sidecar.nativeSidecar).toBe(false);
    expect(merged.sidecar.proxyUid).toBe(1337);
    expect(merged.annotationGuard.allowedGroups).toEqual(['secops']);
  });

  it('the CLI prints a YAML stream kubectl can apply, and rejects bad flags', async () => {
    const chunks: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => { chunks.push(String(chunk)); return true; });
    const errors = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await runManifests(['--namespace', 'fw', '--set', 'injection.namespaces={shop}', '--set', 'sidecar.nativeSidecar=false'])).toBe(0);
      expect(await runManifests(['--namespace', 'Bad_NS'])).toBe(2);
      expect(await runManifests(['--tls-cert', '/nonexistent'])).toBe(2);
    } finally {
      write.mockRestore();
      errors.mockRestore();
    }
    const documents = parseAllDocuments(chunks.join('')).map((d) => d.toJS() as Json);
    expect(documents[0]).toMatchObject({ kind: 'Namespace', metadata: { name: 'fw' } });
    expect(find(documents, 'ConfigMap', 'sidewall-cluster-rules', 'shop')).toBeDefined();
    const settings = parseYaml(find(documents, 'ConfigMap', 'sidewall-injector', 'fw').data['injector.yaml'] as string) as Json;
    expect(settings.nativeSidecar).toBe(false);
    expect(find(documents, 'MutatingWebhookConfiguration').webhooks[0].clientConfig.service).toEqual({ name: 'sidewall-webhook', namespace: 'fw', path: '/mutate', port: 443 });
    for (const object of documents) new models[object.kind]!(object).validate();
  });
});

describe('sidewall manifests: the identity controller (issue 8)', () => {
  const values = setValue(defaultChartValues(), 'injection.namespaces=["shop","ops"]');
  const objects = render(values);
  const deployment = find(objects, 'Deployment');
  const podSpec = deployment.spec.template.spec as Json;
  const controller = (podSpec.containers as Json[]).find((c) => c.name === 'controller')!;

  it('runs `sidewall controller` in the webhook pod with the webhook certificate and probes on its health port', () => {
    expect(controller).toBeDefined();
    expect(controller.command).toEqual(['sidewall']);
    const args = controller.args as string[];
    expect(args[0]).toBe('controller');
    expect(flagValue(args, '--port')).toBe('15012');
    expect(flagValue(args, '--health-port')).toBe('15013');
    expect(flagValue(args, '--tls-cert')).toBe('/etc/sidewall/tls/tls.crt');
    expect(flagValue(args, '--tls-key')).toBe('/etc/sidewall/tls/tls.key');
    expect(flagValue(args, '--audience')).toBe('sidewall-controller');
    const ports = Object.fromEntries((controller.ports as Json[]).map((p) => [p.name, p.containerPort]));
    expect(ports).toEqual({ identity: 15012, 'controller-health': 15013 });
    expect(controller.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'controller-health' });
    expect(controller.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'controller-health' });
    expect(controller.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  });

  it('gives only the controller an API token, laid out as the in-cluster client reads it', () => {
    expect(podSpec.automountServiceAccountToken).toBe(false);
    const apiMounts = (podSpec.containers as Json[]).filter((c) => (c.volumeMounts as Json[]).some((m) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount'));
    expect(apiMounts.map((c) => c.name)).toEqual(['controller']);
    const mount = (controller.volumeMounts as Json[]).find((m) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount')!;
    const volume = (podSpec.volumes as Json[]).find((v) => v.name === mount.name)!;
    const sources = volume.projected.sources as Json[];
    expect(sources.find((s) => s.serviceAccountToken)!.serviceAccountToken.path).toBe('token');
    expect(sources.find((s) => s.configMap)!.configMap).toEqual({ name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
    expect(sources.find((s) => s.downwardAPI)!.downwardAPI.items[0]).toMatchObject({ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } });
  });

  it('exposes the identity stream on the webhook Service, targeting the controller port', () => {
    const service = find(objects, 'Service');
    const identity = (service.spec.ports as Json[]).find((p) => p.name === 'identity')!;
    expect(identity).toMatchObject({ port: 15012, targetPort: 'identity', protocol: 'TCP' });
    expect((controller.ports as Json[]).some((p) => p.name === identity.targetPort)).toBe(true);
  });

  it('binds a ClusterRole to list and watch pods, namespaces, Services and EndpointSlices and create TokenReviews, and nothing more, to the webhook ServiceAccount', () => {
    const role = find(objects, 'ClusterRole', 'sidewall-controller');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['pods', 'namespaces', 'services'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    ]);
    const binding = find(objects, 'ClusterRoleBinding', 'sidewall-controller');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'sidewall-controller' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: podSpec.serviceAccountName, namespace: 'sidewall-system' }]);
    expect(find(objects, 'ServiceAccount', podSpec.serviceAccountName as string, 'sidewall-system')).toBeDefined();
  });

  it('sidecars in every injected namespace get a config naming the controller, and a CA that verifies its certificate for that name', () => {
    const serving = new X509Certificate(Buffer.from(find(objects, 'Secret').data['tls.crt'] as string, 'base64').toString());
    for (const namespace of ['shop', 'ops', 'sidewall-system']) {
      const config = parseConfig(parseYaml(find(objects, 'ConfigMap', 'sidewall-sidecar-config', namespace).data['config.yaml'] as string), 'config.yaml');
      expect(config.identity).toEqual({ controller: 'sidewall-webhook.sidewall-system.svc:15012', tokenFile: IDENTITY_TOKEN_FILE, caFile: CONTROLLER_CA_FILE });
      const host = config.identity!.controller.split(':')[0]!;
      expect(serving.checkHost(host)).toBe(host);
      const ca = new X509Certificate(find(objects, 'ConfigMap', 'sidewall-controller-ca', namespace).data['ca.crt'] as string);
      expect(serving.verify(ca.publicKey)).toBe(true);
    }
  });

  it('an injected pod mounts the token and CA where that config looks, from ConfigMaps that exist, and still validates', () => {
    const settings = resolveInjectorSettings(parseYaml(find(objects, 'ConfigMap', 'sidewall-injector', 'sidewall-system').data['injector.yaml'] as string), 'injector.yaml');
    expect(settings.identity).toEqual({ audience: 'sidewall-controller', expirationSeconds: 3600, caConfigMap: 'sidewall-controller-ca' });
    const { pod } = admitPod(podCreateReview(replicaSetPod(), { namespace: 'ops' }), settings);
    const proxy = findContainer(pod.spec!.initContainers, 'sidewall-proxy');
    const mountDir = (volume: string) => proxy.volumeMounts!.find((m) => m.name === volume)!.mountPath;
    expect(`${mountDir('sidewall-identity-token')}/token`).toBe(IDENTITY_TOKEN_FILE);
    expect(`${mountDir('sidewall-controller-ca')}/ca.crt`).toBe(CONTROLLER_CA_FILE);
    const token = pod.spec!.volumes!.find((v) => v.name === 'sidewall-identity-token') as unknown as { projected: { sources: Json[] } };
    // The controller checks the token for the audience it was started with.
    expect(token.projected.sources[0]!.serviceAccountToken.audience).toBe(flagValue(controller.args as string[], '--audience'));
    for (const volume of pod.spec!.volumes!) {
      const name = (volume as Json).configMap?.name as string | undefined;
      if (name !== undefined && name !== 'kube-root-ca.crt') expect(() => find(objects, 'ConfigMap', name, 'ops')).not.toThrow();
    }
  });

  it('sidecar.config.capture: injected pods get a capture volume sized from maxBytes, mounted where the sidecar writes captures', () => {
    const withCapture = setValue(values, 'sidecar.config.capture={"onAlert":true,"maxBytes":"64MiB"}');
    expect(validateValues(withCapture), JSON.stringify(validateValues.errors)).toBe(true);
    const rendered = render(withCapture);
    for (const object of rendered) new models[object.kind]!(object).validate();
    const config = parseConfig(parseYaml(find(rendered, 'ConfigMap', 'sidewall-sidecar-config', 'shop').data['config.yaml'] as string), 'config.yaml');
    expect(config.capture).toMatchObject({ onAlert: true, maxBytes: 64 * 1024 * 1024, dir: CAPTURE_DIR });
    const settings = resolveInjectorSettings(parseYaml(find(rendered, 'ConfigMap', 'sidewall-injector', 'sidewall-system').data['injector.yaml'] as string), 'injector.yaml');
    expect(settings.capture).toEqual({ maxBytes: 64 * 1024 * 1024 });
    // A real AdmissionReview, the patch applied and the pod checked against the core/v1 schema.
    const { pod } = admitPod(podCreateReview(replicaSetPod(), { namespace: 'shop' }), settings);
    const proxy = findContainer(pod.spec!.initContainers, 'sidewall-proxy');
    expect(proxy.volumeMounts).toContainEqual({ name: 'sidewall-captures', mountPath: config.capture.dir });
    const volume = pod.spec!.volumes!.find((v) => v.name === 'sidewall-captures') as Json;
    // On the node's disk (no medium: Memory), 64 MiB + a quarter + one 4 KiB block per file the store may keep.
    expect(volume.emptyDir).toEqual({ sizeLimit: '120Mi' });
    expect(captureVolumeSizeLimit(64 * 1024 * 1024)).toBe('120Mi');
    // The chart's helper writes the folder the injector mounts (render.ts mirrors it).
    expect(templates.find((t) => t.file === '_helpers.tpl')!.text).toContain(`"dir" "${CAPTURE_DIR}"`);
    // The validating webhook takes the pod as one the injector made.
    expect(injectionProblems('Pod', pod.spec, pod.metadata!, settings, 'spec')).toEqual([]);
    // capture unset (the default): no capture volume, captures stay in /tmp.
    const defaults = resolveInjectorSettings(parseYaml(find(objects, 'ConfigMap', 'sidewall-injector', 'sidewall-system').data['injector.yaml'] as string), 'injector.yaml');
    expect(defaults.capture).toBeUndefined();
    const plain = admitPod(podCreateReview(replicaSetPod(), { namespace: 'shop' }), defaults).pod;
    expect(plain.spec!.volumes!.map((v) => v.name)).not.toContain('sidewall-captures');
    // A bad size is refused by values.schema.json and by the injector settings' schema, naming the field.
    expect(validateValues(setValue(values, 'sidecar.config.capture={"maxBytes":"lots"}'))).toBe(false);
    expect(() => resolveInjectorSettings({ capture: { maxBytes: 'lots' } }, 'injector.yaml')).toThrow(/capture\.maxBytes: must be a size/);
  });

  it('the chart templates write the same paths and settings keys as render.ts', () => {
    const helpers = templates.find((t) => t.file === '_helpers.tpl')!.text;
    expect(helpers).toContain(`"tokenFile" "${IDENTITY_TOKEN_FILE}"`);
    expect(helpers).toContain(`"caFile" "${CONTROLLER_CA_FILE}"`);
    const identityKeys = Object.keys(injectorSettingsDocument(values, 'sidewall', '0.1.0').identity as Json);
    expect(identityKeys.length).toBeGreaterThan(0);
    for (const key of identityKeys) expect(helpers).toMatch(new RegExp(`^identity:\\n(  \\S.*\\n)*  ${key}: `, 'm'));
    const deploymentTemplate = templates.find((t) => t.file === 'deployment.yaml')!.text;
    for (const arg of controller.args as string[]) if (arg.startsWith('--')) expect(deploymentTemplate).toContain(`- ${arg}\n`);
  });

  it('with controller.enabled=false none of it is rendered, and injected pods get no token', () => {
    const off = render(setValue(values, 'controller.enabled=false'));
    expect(off.some((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toBe(false);
    expect(off.some((o) => o.kind === 'ConfigMap' && o.metadata.name === 'sidewall-controller-ca')).toBe(false);
    const offDeployment = find(off, 'Deployment');
    expect((offDeployment.spec.template.spec.containers as Json[]).map((c) => c.name)).toEqual(['webhook']);
    expect((offDeployment.spec.template.spec.volumes as Json[]).map((v) => v.name)).toEqual(['tls', 'injector-settings']);
    expect((find(off, 'Service').spec.ports as Json[]).map((p) => p.name)).toEqual(['https']);
    const config = parseYaml(find(off, 'ConfigMap', 'sidewall-sidecar-config', 'shop').data['config.yaml'] as string) as Json;
    expect(config.identity).toBeUndefined();
    const settings = resolveInjectorSettings(parseYaml(find(off, 'ConfigMap', 'sidewall-injector', 'sidewall-system').data['injector.yaml'] as string), 'injector.yaml');
    expect(settings.identity).toBeUndefined();
    const { pod } = admitPod(podCreateReview(replicaSetPod(), { namespace: 'shop' }), settings);
    expect(pod.spec!.volumes!.map((v) => v.name)).not.toContain('sidewall-identity-token');
    for (const object of off) new models[object.kind]!(object).validate();
  });

  it('cert-manager without controller.caBundle is refused with what to do; a caBundle that is not PEM too', () => {
    const managed = setValue(defaultChartValues(), 'tls.certManager.enabled=true');
    expect(() => render(managed)).toThrow(/controller\.caBundle.*or controller\.enabled=false/);
    expect(render(setValue(managed, 'controller.enabled=false')).some((o) => o.kind === 'ClusterRole')).toBe(false);
    expect(() => render(setValue(defaultChartValues(), `controller.caBundle=${testCa().caCert.replace(/\n/g, ' ')}`))).toThrow(/controller\.caBundle is not a PEM certificate/);
  });

  it('the CLI prints the controller objects, valid against the Kubernetes schema', async () => {
    const chunks: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => { chunks.push(String(chunk)); return true; });
    try {
      expect(await runManifests(['--namespace', 'fw', '--set', 'injection.namespaces={shop}', '--set', 'controller.port=16012'])).toBe(0);
    } finally {
      write.mockRestore();
    }
    const text = chunks.join('');
    expect(text).not.toMatch(/[&*]a\d+\b/); // no YAML aliases: every object written out in full
    const documents = parseAllDocuments(text).map((d) => d.toJS() as Json);
    for (const object of documents) new models[object.kind]!(object).validate();
    const config = parseYaml(find(documents, 'ConfigMap', 'sidewall-sidecar-config', 'shop').data['config.yaml'] as string) as Json;
    expect(config.identity.controller).toBe('sidewall-webhook.fw.svc:16012');
    expect(find(documents, 'ClusterRoleBinding').subjects[0]).toEqual({ kind: 'ServiceAccount', name: 'sidewall-webhook', namespace: 'fw' });
    expect((find(documents, 'Service').spec.ports as Json[]).find((p) => p.name === 'identity')?.port).toBe(16012);
  });
});
