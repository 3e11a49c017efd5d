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
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { ValidatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration';
import { chartDirectory, defaultChartValues, mergeValues, renderInstallation, setValue, type ChartValues } from '../../injector/install/render.js';
import { generateWebhookTls } from '../../injector/install/tls.js';
import { defaultInjectorSettings, mutatePod, resolveInjectorSettings, type Pod } from '../../injector/index.js';
import { run as runManifests } from '../../src/cli/manifests.js';
import { parseConfig } from '../../src/config/index.js';
import { checkRuleSource } from '../../src/policy/index.js';
import { replicaSetPod } from './fixtures.js';

type Json = Record<string, any>;
const chart = chartDirectory();
const schema = JSON.parse(readFileSync(join(chart, 'values.schema.json'), 'utf8')) as object;
const validateValues = new Ajv({ allErrors: true, strict: false }).compile(schema);
const templates = readdirSync(join(chart, 'templates')).map((file) => ({ file, text: readFileSync(join(chart, 'templates', file), 'utf8') }));

const models: Record<string, new (data: any) => { validate(): void }> = {
  Deployment, Service, ServiceAccount, ConfigMap, Secret, Namespace, PodDisruptionBudget, Role, RoleBinding, MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
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
  ])('values.schema.json rejects %s', (assignment) => {
    expect(validateValues(setValue(defaultChartValues(), assignment))).toBe(false);
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

  it('the chart default image is ghcr.io/sidewall/sidewall at the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const chartYaml = parseYaml(readFileSync(join(chart, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    expect(chartYaml.appVersion).toBe(pkg.version);
    expect(defaultChartValues().image.repository).toBe('ghcr.io/sidewall/sidewall');
    expect(defaultInjectorSettings().image).toBe(`ghcr.io/sidewall/sidewall:${pkg.version}`);
  });
});

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
    expect(resources.sort()).toEqual(['cronjobs', 'daemonsets', 'deployments', 'jobs', 'pods', 'replicasets', 'statefulsets']);
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
    expect(settings.image).toBe('ghcr.io/sidewall/sidewall:0.1.0');
    const result = mutatePod(replicaSetPod() as Pod, settings);
    const volumes = result.patch.flatMap((op) => (op.op === 'add' && op.path === '/spec/volumes/-' ? [op.value as Json] : []));
    const configMapNames = volumes.filter((v) => v.configMap !== undefined).map((v) => v.configMap.name as string);
    expect(configMapNames.length).toBe(2);
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
    const managed = render(setValue(defaultChartValues(), 'tls.certManager.enabled=true'));
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
