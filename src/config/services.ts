// The config's static `services:` list (PRODUCT.md "Sidecar config"): Kubernetes Services for the
// demo and for clusters without the controller. An entry:
//   { namespace, name, clusterIPs: [ip...] (or clusterIP: ip), ports: [80, {port, targetPort, protocol, name}],
//     selector: {label: value}, endpoints: [ip...] }
// With `selector` and no `endpoints`, the ready endpoints are the known workloads (static
// `identities` and the controller's map) of the Service's namespace whose labels it selects;
// `endpoints` lists them instead (a Service without a selector, e.g. a database outside the cluster).
import { isIP } from 'node:net';
import type { ServiceEntry, ServicePortEntry } from '../identity/service-directory.js';

export interface ProblemSink {
  add(field: string, detail: string): void;
  unknownKeys(field: string, value: Record<string, unknown>, allowed: readonly string[]): void;
}

const ENTRY_KEYS = ['namespace', 'name', 'clusterIP', 'clusterIPs', 'ports', 'selector', 'endpoints', 'type', 'externalName'];
const PORT_KEYS = ['port', 'targetPort', 'protocol', 'name'];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SERVICE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

function ipList(problems: ProblemSink, field: string, value: unknown): string[] | undefined {
  const items = Array.isArray(value) ? value : [value];
  const out: string[] = [];
  items.forEach((ip, i) => {
    const at = Array.isArray(value) ? `${field}[${i}]` : field;
    if (typeof ip !== 'string' || isIP(ip) === 0) problems.add(at, `${JSON.stringify(ip)} is not an IP address`);
    else out.push(ip);
  });
  return out.length === items.length ? out : undefined;
}

export function parseServices(problems: ProblemSink, value: unknown): ServiceEntry[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add('services', 'must be a list of {namespace, name, clusterIPs, ports, selector}');
    return [];
  }
  const out: ServiceEntry[] = [];
  const seen = new Map<string, number>();
  const ips = new Map<string, string>();
  value.forEach((entry: unknown, i) => {
    const field = `services[${i}]`;
    if (!isRecord(entry)) {
      problems.add(field, 'must be a mapping with namespace, name, clusterIPs, ports and selector');
      return;
    }
    problems.unknownKeys(field, entry, ENTRY_KEYS);
    let ok = true;
    if (typeof entry.namespace !== 'string' || !DNS_LABEL.test(entry.namespace)) {
      problems.add(`${field}.namespace`, `${JSON.stringify(entry.namespace)} is not a namespace name (lower-case letters, digits and '-')`);
      ok = false;
    }
    if (typeof entry.name !== 'string' || !SERVICE_NAME.test(entry.name)) {
      problems.add(`${field}.name`, `${JSON.stringify(entry.name)} is not a Service name (lower-case letters, digits and '-', starting with a letter)`);
      ok = false;
    }
    if (entry.clusterIP !== undefined && entry.clusterIPs !== undefined) {
      problems.add(field, 'give clusterIPs (a list) or clusterIP, not both');
      ok = false;
    }
    const clusterIPs = ipList(problems, entry.clusterIPs !== undefined ? `${field}.clusterIPs` : `${field}.clusterIP`, entry.clusterIPs ?? entry.clusterIP ?? []);
    if (clusterIPs === undefined) ok = false;
    const ports: ServicePortEntry[] = [];
    const rawPorts = entry.ports ?? [];
    if (!Array.isArray(rawPorts)) {
      problems.add(`${field}.ports`, 'must be a list of ports (80, or {port, targetPort, protocol, name})');
      ok = false;
    } else {
      rawPorts.forEach((p: unknown, j) => {
        const at = `${field}.ports[${j}]`;
        if (isPort(p)) return void ports.push({ port: p });
        if (!isRecord(p) || !isPort(p.port)) {
          problems.add(at, 'must be a port number (1-65535) or {port, targetPort, protocol, name}');
          ok = false;
          return;
        }
        problems.unknownKeys(at, p, PORT_KEYS);
        const port: ServicePortEntry = { port: p.port };
        if (p.targetPort !== undefined) {
          if (isPort(p.targetPort) || (typeof p.targetPort === 'string' && p.targetPort !== '')) port.targetPort = p.targetPort;
          else {
            problems.add(`${at}.targetPort`, 'must be a port number or a container port name');
            ok = false;
          }
        }
        if (p.protocol !== undefined) {
          if (p.protocol === 'TCP' || p.protocol === 'UDP' || p.protocol === 'SCTP') port.protocol = p.protocol;
          else {
            problems.add(`${at}.protocol`, 'must be TCP, UDP or SCTP');
            ok = false;
          }
        }
        if (typeof p.name === 'string') port.name = p.name;
        ports.push(port);
      });
    }
    let selector: Record<string, string> | undefined;
    if (entry.selector !== undefined) {
      if (!isRecord(entry.selector) || Object.values(entry.selector).some((v) => typeof v !== 'string')) {
        problems.add(`${field}.selector`, 'must be a mapping of label to value (strings)');
        ok = false;
      } else selector = entry.selector as Record<string, string>;
    }
    const endpoints = entry.endpoints === undefined ? undefined : ipList(problems, `${field}.endpoints`, entry.endpoints);
    if (entry.endpoints !== undefined && endpoints === undefined) ok = false;
    if (!ok) return;
    const key = `${entry.namespace as string}/${entry.name as string}`;
    const before = seen.get(key);
    if (before !== undefined) {
      problems.add(field, `Service ${key} is already listed at services[${before}]`);
      return;
    }
    seen.set(key, i);
    for (const ip of clusterIPs!) {
      const other = ips.get(ip);
      if (other !== undefined) {
        problems.add(`${field}.clusterIPs`, `${ip} is already the cluster IP of ${other}`);
        return;
      }
      ips.set(ip, key);
    }
    const service: ServiceEntry = { namespace: entry.namespace as string, name: entry.name as string, clusterIPs: clusterIPs!, ports };
    if (selector !== undefined) service.selector = selector;
    if (endpoints !== undefined) service.endpoints = endpoints;
    if (typeof entry.type === 'string') service.type = entry.type;
    if (typeof entry.externalName === 'string') service.externalName = entry.externalName;
    out.push(service);
  });
  return out;
}
