// `sidewall manifests`: prints the whole installation (what `helm install` of charts/sidewall
// creates) as plain YAML for `kubectl apply -f -`, from the chart's own values.yaml.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import {
  defaultChartValues,
  fullName,
  mergeValues,
  renderInstallation,
  setValue,
  toYamlStream,
  type ChartValues,
} from '../../injector/install/render.js';
import { generateWebhookTls, WebhookTlsError, type WebhookTls } from '../../injector/install/tls.js';
import { chartValuesProblems } from '../../injector/install/values-check.js';

const USAGE = `usage: sidewall manifests [--namespace sidewall-system] [--values FILE]... [--set key=value]...
                          [--cert-manager | --tls-cert FILE --tls-key FILE --tls-ca FILE]
                          [--no-namespace]

Prints the whole installation (webhook Deployment with the identity controller, Service,
PodDisruptionBudget, RBAC including the controller's ClusterRole, ConfigMaps, TLS Secret, Mutating-
and ValidatingWebhookConfiguration) as plain YAML; the same objects the Helm
chart charts/sidewall installs, rendered from its values.yaml plus your --values and --set.
Without --cert-manager or --tls-*, a CA and serving certificate are generated with openssl.

  sidewall manifests --set 'injection.namespaces={shop,ops}' | kubectl apply -f -
`;

/** Helm-style list literal in --set: key={a,b}. */
export function normaliseSet(assignment: string): string {
  const match = /^([^=]+)=\{(.*)\}$/.exec(assignment);
  if (match === null) return assignment;
  const items = match[2]!.split(',').map((item) => item.trim()).filter((item) => item !== '');
  return `${match[1]}=${JSON.stringify(items)}`;
}

export async function run(args: string[]): Promise<number> {
  let values: {
    namespace?: string; values?: string[]; set?: string[]; 'cert-manager'?: boolean; 'tls-cert'?: string; 'tls-key'?: string; 'tls-ca'?: string; 'no-namespace'?: boolean; help?: boolean;
  };
  try {
    values = parseArgs({
      args,
      options: {
        namespace: { type: 'string', short: 'n', default: 'sidewall-system' },
        values: { type: 'string', short: 'f', multiple: true },
        set: { type: 'string', multiple: true },
        'cert-manager': { type: 'boolean' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-ca': { type: 'string' },
        'no-namespace': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`sidewall manifests: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const namespace = values.namespace ?? 'sidewall-system';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) || namespace.length > 63) {
    process.stderr.write(`sidewall manifests: --namespace '${namespace}' is not a valid namespace name\n`);
    return 2;
  }
  try {
    let chartValues: ChartValues = defaultChartValues();
    for (const file of values.values ?? []) chartValues = mergeValues(chartValues, parseYaml(readFileSync(file, 'utf8')));
    for (const assignment of values.set ?? []) chartValues = setValue(chartValues, normaliseSet(assignment));
    if (values['cert-manager'] === true) chartValues = setValue(chartValues, 'tls.certManager.enabled=true');
    // What `helm install` refuses by values.schema.json (the same schema), and the rules' checks:
    // every pod injected with a bad value would fail at start.
    const problems = chartValuesProblems(chartValues);
    if (problems.length > 0) {
      process.stderr.write(`sidewall manifests: the values do not validate (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n`);
      for (const problem of problems) process.stderr.write(`  values: ${problem}\n`);
      return 1;
    }

    const ownFiles = [values['tls-cert'], values['tls-key'], values['tls-ca']];
    let tls: WebhookTls | undefined;
    if (ownFiles.some((file) => file !== undefined)) {
      if (ownFiles.some((file) => file === undefined)) {
        process.stderr.write('sidewall manifests: --tls-cert, --tls-key and --tls-ca go together\n');
        return 2;
      }
      tls = { tlsCert: readFileSync(values['tls-cert']!, 'utf8'), tlsKey: readFileSync(values['tls-key']!, 'utf8'), caCert: readFileSync(values['tls-ca']!, 'utf8') };
    } else if (!chartValues.tls.certManager.enabled) {
      tls = generateWebhookTls(`${fullName('sidewall')}-webhook`, namespace, { ca: chartValues.tls.caValidityDays, cert: chartValues.tls.certValidityDays });
    }
    const objects = renderInstallation(chartValues, { namespace, tls, includeNamespace: values['no-namespace'] !== true });
    process.stdout.write(toYamlStream(objects));
    return 0;
  } catch (err) {
    const error = err as Error & { code?: string };
    if (err instanceof WebhookTlsError || error.code?.startsWith('SIDEWALL_') === true || error.code === 'ENOENT') {
      process.stderr.write(`sidewall manifests: ${error.message}\n`);
      return 1;
    }
    throw err;
  }
}
