// `sidewall check --kubeconfig`: is an installation (chart or `sidewall manifests`) in a state
// where pods can be created and get their sidecar? With failurePolicy Fail a webhook whose
// Service has no ready endpoint, or whose caBundle does not verify its serving certificate,
// stops every pod creation in labelled namespaces; a labelled namespace without the sidecar
// ConfigMaps gets pods whose sidecar cannot start. Read-only: only GETs and LISTs.
import { X509Certificate } from 'node:crypto';
import { AdmissionregistrationV1Api, AppsV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { parseConfig, ConfigError } from '../../src/config/load.js';
import { checkRuleSource } from '../../src/policy/source.js';
import { formatIssue } from '../../src/policy/source.js';
import { fullName } from './render.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckLine {
  status: CheckStatus;
  name: string;
  detail: string;
  /** More lines, printed indented under it. */
  more?: string[];
}

export interface ClusterCheckOptions {
  kubeconfig: string;
  namespace: string;
  releaseName?: string;
  now?: Date;
}

type Json = Record<string, any>;

function isNotFound(err: unknown): boolean {
  const e = err as { code?: number; statusCode?: number; body?: unknown };
  return e.code === 404 || e.statusCode === 404;
}

function errorText(err: unknown): string {
  const e = err as { code?: number; message?: string };
  return e.code !== undefined ? `HTTP ${e.code}` : (e.message ?? String(err)).split('\n')[0]!;
}

/** Every check against the cluster; never throws for what the API answers. */
export async function checkCluster(options: ClusterCheckOptions): Promise<CheckLine[]> {
  const kc = new KubeConfig();
  kc.loadFromFile(options.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const name = fullName(options.releaseName ?? 'sidewall');
  const service = `${name}-webhook`;
  const namespace = options.namespace;
  const now = options.now ?? new Date();
  const lines: CheckLine[] = [];

  // The API server answers at all.
  try {
    await core.readNamespace({ name: namespace });
  } catch (err) {
    if (isNotFound(err)) {
      lines.push({ status: 'fail', name: 'cluster', detail: `namespace ${namespace} does not exist: sidewall is not installed there (--namespace)` });
    } else {
      lines.push({ status: 'fail', name: 'cluster', detail: `cannot reach the API server in ${options.kubeconfig}: ${errorText(err)}` });
    }
    return lines;
  }

  // The webhook registrations.
  const webhooks: Array<{ kind: string; object: Json | undefined }> = [];
  for (const [kind, objectName] of [['MutatingWebhookConfiguration', `${name}-injector`], ['ValidatingWebhookConfiguration', `${name}-validator`]] as const) {
    let object: Json | undefined;
    try {
      object = (kind === 'MutatingWebhookConfiguration'
        ? await admission.readMutatingWebhookConfiguration({ name: objectName })
        : await admission.readValidatingWebhookConfiguration({ name: objectName })) as unknown as Json;
    } catch (err) {
      lines.push({ status: 'fail', name: `webhook ${objectName}`, detail: isNotFound(err) ? `no ${kind} ${objectName}: pods are not injected/validated` : errorText(err) });
      webhooks.push({ kind, object: undefined });
      continue;
    }
    webhooks.push({ kind, object });
    const problems: string[] = [];
    for (const hook of (object.webhooks ?? []) as Json[]) {
      const ref = hook.clientConfig?.service as Json | undefined;
      if (ref === undefined) problems.push(`${hook.name}: clientConfig has no service`);
      else if (ref.name !== service || ref.namespace !== namespace) problems.push(`${hook.name}: calls service ${ref.namespace}/${ref.name}, not ${namespace}/${service}`);
      if (typeof hook.clientConfig?.caBundle !== 'string' || hook.clientConfig.caBundle === '') problems.push(`${hook.name}: clientConfig.caBundle is empty (cert-manager's cainjector not done yet?)`);
    }
    const failurePolicy = ((object.webhooks ?? []) as Json[]).map((h) => h.failurePolicy as string).join(', ');
    lines.push(problems.length === 0
      ? { status: 'ok', name: `webhook ${objectName}`, detail: `registered, calls ${namespace}/${service}, failurePolicy ${failurePolicy}` }
      : { status: 'fail', name: `webhook ${objectName}`, detail: `${problems.length} problem${problems.length === 1 ? '' : 's'}`, more: problems });
  }

  // The CA bundle against the serving certificate.
  const bundles = new Set(webhooks.flatMap((w) => ((w.object?.webhooks ?? []) as Json[]).map((h) => h.clientConfig?.caBundle as string | undefined)).filter((b): b is string => typeof b === 'string' && b !== ''));
  try {
    const secret = (await core.readNamespacedSecret({ name: `${service}-tls`, namespace })) as unknown as Json;
    const certPem = Buffer.from(String(secret.data?.['tls.crt'] ?? ''), 'base64').toString('utf8');
    const cert = new X509Certificate(certPem);
    const problems: string[] = [];
    const dnsName = `${service}.${namespace}.svc`;
    if (!(cert.subjectAltName ?? '').split(/,\s*/).includes(`DNS:${dnsName}`)) problems.push(`the serving certificate does not name DNS:${dnsName} (it has ${cert.subjectAltName ?? 'no subjectAltName'})`);
    const expires = new Date(cert.validTo);
    if (expires.getTime() <= now.getTime()) problems.push(`the serving certificate expired on ${expires.toISOString()}`);
    if (bundles.size > 1) problems.push('the two webhooks carry different caBundles');
    for (const bundle of bundles) {
      let ca: X509Certificate;
      try {
        ca = new X509Certificate(Buffer.from(bundle, 'base64'));
      } catch {
        problems.push('a webhook caBundle is not a PEM certificate');
        continue;
      }
      if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) problems.push(`the webhooks' caBundle (${ca.subject.replace(/\n/g, ', ')}) did not sign the serving certificate (issuer ${cert.issuer.replace(/\n/g, ', ')}): the API server will refuse the webhook's TLS`);
    }
    const days = Math.floor((expires.getTime() - now.getTime()) / 86_400_000);
    if (problems.length > 0) lines.push({ status: 'fail', name: 'webhook TLS', detail: `${problems.length} problem${problems.length === 1 ? '' : 's'}`, more: problems });
    else lines.push({ status: days < 30 ? 'warn' : 'ok', name: 'webhook TLS', detail: `caBundle signs the serving certificate for ${dnsName}; expires in ${days} days` });
  } catch (err) {
    lines.push({ status: 'fail', name: 'webhook TLS', detail: isNotFound(err) ? `no Secret ${namespace}/${service}-tls` : `cannot read the serving certificate: ${errorText(err)}` });
  }

  // The webhook Deployment: with failurePolicy Fail, no ready replica means no pod creation.
  try {
    const deployment = (await apps.readNamespacedDeployment({ name: service, namespace })) as unknown as Json;
    const ready = Number(deployment.status?.readyReplicas ?? 0);
    const wanted = Number(deployment.spec?.replicas ?? 1);
    lines.push({
      status: ready === 0 ? 'fail' : ready < wanted ? 'warn' : 'ok',
      name: `deployment ${service}`,
      detail: `${ready}/${wanted} replicas ready${ready === 0 ? ': with failurePolicy Fail no pod can be created in a labelled namespace' : ''}`,
    });
  } catch (err) {
    lines.push({ status: 'fail', name: `deployment ${service}`, detail: isNotFound(err) ? `no Deployment ${namespace}/${service}` : errorText(err) });
  }

  // Labelled namespaces: the selector the mutating webhook uses.
  const mutating = webhooks[0]?.object;
  const selector = ((mutating?.webhooks ?? []) as Json[])[0]?.namespaceSelector?.matchLabels as Record<string, string> | undefined ?? { 'sidewall-injection': 'enabled' };
  const labelSelector = Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',');
  try {
    const list = (await core.listNamespace({ labelSelector })) as unknown as Json;
    const names = ((list.items ?? []) as Json[]).map((n) => String(n.metadata?.name));
    if (names.length === 0) lines.push({ status: 'warn', name: 'namespaces', detail: `no namespace is labelled ${labelSelector}: no pod gets the sidecar` });
    for (const ns of names) {
      const problems: string[] = [];
      for (const [configMap, key] of [[`${name}-sidecar-config`, 'config.yaml'], [`${name}-cluster-rules`, 'rules.yaml']] as const) {
        try {
          const cm = (await core.readNamespacedConfigMap({ name: configMap, namespace: ns })) as unknown as Json;
          const text = String(cm.data?.[key] ?? '');
          if (key === 'config.yaml') {
            try {
              parseConfig(parseYaml(text), `${ns}/${configMap}`);
            } catch (err) {
              problems.push(...(err instanceof ConfigError ? err.problems : [(err as Error).message]));
            }
          } else {
            problems.push(...checkRuleSource(text, `${ns}/${configMap}`, { tier: 'cluster' }).map(formatIssue));
          }
        } catch (err) {
          problems.push(isNotFound(err) ? `no ConfigMap ${configMap}: injected pods' sidecars cannot start (add ${ns} to injection.namespaces)` : `${configMap}: ${errorText(err)}`);
        }
      }
      lines.push(problems.length === 0
        ? { status: 'ok', name: `namespace ${ns}`, detail: `labelled ${labelSelector}; sidecar config and cluster rules present and valid` }
        : { status: 'fail', name: `namespace ${ns}`, detail: `labelled ${labelSelector}, ${problems.length} problem${problems.length === 1 ? '' : 's'}`, more: problems });
    }
  } catch (err) {
    lines.push({ status: 'fail', name: 'namespaces', detail: `cannot list namespaces: ${errorText(err)}` });
  }
  return lines;
}
