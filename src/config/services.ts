// The config's static `services:` list (PRODUCT.md "Sidecar config"): Kubernetes Services for the
// demo and for clusters without the controller. An entry:
//   { namespace, name, clusterIPs: [ip...] (or clusterIP: ip), ports: [80, {port, targetPort, protocol, name}],
//     selector: {label: value}, endpoints: [ip...] }
// With `selector` and no `endpoints`, the ready endpoints are the known workloads (static
// `identities` and the controller's map) of the Service's namespace whose labels it selects;
// `endpoints` lists them instead (a Service without a selector, e.g. a database outside the cluster).
// The shape is SERVICES_SCHEMA (part of the config schema); what it cannot say (one Service or
// cluster IP listed twice) is servicesProblems'.
import type { ServiceEntry, ServicePortEntry } from '../identity/service-directory.js';
import { DNS_LABEL, SERVICE_NAME } from '../policy/rule-schema.js';
import type { JsonSchema } from '../schema/validator.js';

const PORT: JsonSchema = { type: 'integer', minimum: 1, maximum: 65535, 'x-messages': { type: 'must be a port number (1-65535), not {show}', minimum: 'must be a port number (1-65535), not {show}', maximum: 'must be a port number (1-65535), not {show}' } };
const IP: JsonSchema = { type: 'string', format: 'ip', 'x-messages': { type: '{show} is not an IP address' } };
const IPS: JsonSchema = { if: { type: 'array' }, then: { type: 'array', items: IP }, else: IP };

export const SERVICES_SCHEMA: JsonSchema = {
  type: ['array', 'null'],
  'x-messages': { type: 'must be a list of {namespace, name, clusterIPs, ports, selector}, not {describe}' },
  items: {
    type: 'object',
    required: ['namespace', 'name'],
    additionalProperties: false,
    'x-messages': { type: 'must be a mapping with namespace, name, clusterIPs, ports and selector, not {describe}' },
    properties: {
      namespace: { type: 'string', pattern: DNS_LABEL, 'x-messages': { pattern: "'{value}' is not a namespace name (lower-case letters, digits and '-')" } },
      name: { type: 'string', pattern: SERVICE_NAME, 'x-messages': { pattern: "'{value}' is not a Service name (lower-case letters, digits and '-', starting with a letter)" } },
      clusterIP: IPS,
      clusterIPs: IPS,
      ports: {
        type: 'array',
        'x-messages': { type: 'must be a list of ports (80, or {port, targetPort, protocol, name}), not {describe}' },
        items: {
          if: { type: 'number' },
          then: PORT,
          else: {
            type: 'object',
            required: ['port'],
            additionalProperties: false,
            'x-messages': { type: 'must be a port number (1-65535) or {port, targetPort, protocol, name}, not {describe}' },
            properties: {
              port: PORT,
              targetPort: { if: { type: 'number' }, then: PORT, else: { type: 'string', minLength: 1, 'x-messages': { type: 'must be a port number or a container port name, not {describe}' } } },
              protocol: { type: 'string', enum: ['TCP', 'UDP', 'SCTP'] },
              name: { type: 'string' },
            },
          },
        },
      },
      selector: { type: 'object', additionalProperties: { type: 'string' }, 'x-messages': { type: 'must be a mapping of label to value (strings), not {describe}' } },
      endpoints: IPS,
      type: { type: 'string' },
      externalName: { type: 'string' },
    },
  },
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function ipsOf(value: unknown): string[] {
  return (Array.isArray(value) ? value : value === undefined ? [] : [value]).filter((ip): ip is string => typeof ip === 'string');
}

/** What the schema cannot say; reads whatever it can of invalid input too. */
export function servicesProblems(value: unknown): Array<{ field: string; detail: string }> {
  const problems: Array<{ field: string; detail: string }> = [];
  if (!Array.isArray(value)) return problems;
  const seen = new Map<string, number>();
  const ips = new Map<string, string>();
  value.forEach((entry: unknown, i) => {
    if (!isRecord(entry)) return;
    const field = `services[${i}]`;
    if (entry.clusterIP !== undefined && entry.clusterIPs !== undefined) problems.push({ field, detail: 'give clusterIPs (a list) or clusterIP, not both' });
    const key = `${String(entry.namespace)}/${String(entry.name)}`;
    const before = seen.get(key);
    if (before !== undefined) {
      problems.push({ field, detail: `Service ${key} is already listed at services[${before}]` });
      return;
    }
    seen.set(key, i);
    for (const ip of ipsOf(entry.clusterIPs ?? entry.clusterIP)) {
      const other = ips.get(ip);
      if (other !== undefined) {
        problems.push({ field: `${field}.clusterIPs`, detail: `${ip} is already the cluster IP of ${other}` });
        return;
      }
      ips.set(ip, key);
    }
  });
  return problems;
}

/** The entries of a `services:` list that passed the schema and servicesProblems. */
export function toServiceEntries(value: unknown): ServiceEntry[] {
  if (!Array.isArray(value)) return [];
  return value.map((raw) => {
    const entry = raw as Record<string, unknown>;
    const ports: ServicePortEntry[] = ((entry.ports ?? []) as unknown[]).map((p) => {
      if (typeof p === 'number') return { port: p };
      const { port, targetPort, protocol, name } = p as ServicePortEntry;
      const out: ServicePortEntry = { port };
      if (targetPort !== undefined) out.targetPort = targetPort;
      if (protocol !== undefined) out.protocol = protocol;
      if (name !== undefined) out.name = name;
      return out;
    });
    const service: ServiceEntry = { namespace: entry.namespace as string, name: entry.name as string, clusterIPs: ipsOf(entry.clusterIPs ?? entry.clusterIP), ports };
    if (entry.selector !== undefined) service.selector = entry.selector as Record<string, string>;
    if (entry.endpoints !== undefined) service.endpoints = ipsOf(entry.endpoints);
    if (typeof entry.type === 'string') service.type = entry.type;
    if (typeof entry.externalName === 'string') service.externalName = entry.externalName;
    return service;
  });
}
