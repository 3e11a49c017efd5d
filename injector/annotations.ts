// The per-pod knobs (PRODUCT.md "Injection"): annotation names and the parsing of their values.
// The mutating webhook uses the parsed values and turns problems into warnings; the validating
// webhook turns the same problems into a denial, so a typo is reported once, clearly.
import { isIP } from 'node:net';

export const ANNOTATION = {
  inject: 'sidewall.io/inject',
  status: 'sidewall.io/status',
  rules: 'sidewall.io/rules',
  mode: 'sidewall.io/mode',
  excludeInboundPorts: 'sidewall.io/exclude-inbound-ports',
  excludeOutboundPorts: 'sidewall.io/exclude-outbound-ports',
  excludeOutboundCidrs: 'sidewall.io/exclude-outbound-cidrs',
  proxyCpuRequest: 'sidewall.io/proxy-cpu-request',
  proxyMemoryRequest: 'sidewall.io/proxy-memory-request',
  proxyCpuLimit: 'sidewall.io/proxy-cpu-limit',
  proxyMemoryLimit: 'sidewall.io/proxy-memory-limit',
} as const;

export const STATUS_INJECTED = 'injected';
export const MODES = ['protect', 'monitor', 'learn'] as const;

export interface AnnotationIssue {
  annotation: string;
  value: string;
  message: string;
}

// A Kubernetes resource.Quantity in the forms people write: 100m, 0.5, 128Mi, 1G, 1e3.
const QUANTITY = /^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;

function splitList(value: string): string[] {
  return value.split(',').map((item) => item.trim()).filter((item) => item.length > 0);
}

export function parsePortList(annotation: string, value: string, issues: AnnotationIssue[]): number[] {
  const ports: number[] = [];
  for (const item of splitList(value)) {
    const port = /^[0-9]{1,5}$/.test(item) ? Number(item) : NaN;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      issues.push({ annotation, value, message: `'${item}' is not a port number (1-65535); expected a comma-separated list such as "22,8080"` });
    } else if (!ports.includes(port)) {
      ports.push(port);
    }
  }
  return ports;
}

export function isCidr(text: string): boolean {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return false;
  if (slash === -1) return true;
  const prefixText = text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(prefixText)) return false;
  const prefix = Number(prefixText);
  return prefix <= (family === 4 ? 32 : 128);
}

export function parseCidrList(annotation: string, value: string, issues: AnnotationIssue[]): string[] {
  const cidrs: string[] = [];
  for (const item of splitList(value)) {
    if (!isCidr(item)) {
      issues.push({ annotation, value, message: `'${item}' is not an IP address or CIDR; expected a comma-separated list such as "169.254.169.254/32,10.0.0.0/8"` });
    } else if (!cidrs.includes(item)) {
      cidrs.push(item);
    }
  }
  return cidrs;
}

export function parseQuantity(annotation: string, value: string, issues: AnnotationIssue[]): string | undefined {
  const trimmed = value.trim();
  if (QUANTITY.test(trimmed)) return trimmed;
  issues.push({ annotation, value, message: `'${value}' is not a Kubernetes quantity (examples: 100m, 0.5, 128Mi, 1Gi)` });
  return undefined;
}

export interface PodKnobs {
  excludeInboundPorts: number[];
  excludeOutboundPorts: number[];
  excludeOutboundCidrs: string[];
  proxyResources: { requests: Record<string, string>; limits: Record<string, string> };
}

/**
 * Reads the per-pod knobs from annotations. Problems are appended to `issues` and the faulty
 * value is left out, so a caller that only warns still produces a working pod.
 */
export function readPodKnobs(annotations: Record<string, string>, issues: AnnotationIssue[]): PodKnobs {
  const knobs: PodKnobs = {
    excludeInboundPorts: [],
    excludeOutboundPorts: [],
    excludeOutboundCidrs: [],
    proxyResources: { requests: {}, limits: {} },
  };
  const inbound = annotations[ANNOTATION.excludeInboundPorts];
  if (inbound !== undefined) knobs.excludeInboundPorts = parsePortList(ANNOTATION.excludeInboundPorts, inbound, issues);
  const outbound = annotations[ANNOTATION.excludeOutboundPorts];
  if (outbound !== undefined) knobs.excludeOutboundPorts = parsePortList(ANNOTATION.excludeOutboundPorts, outbound, issues);
  const cidrs = annotations[ANNOTATION.excludeOutboundCidrs];
  if (cidrs !== undefined) knobs.excludeOutboundCidrs = parseCidrList(ANNOTATION.excludeOutboundCidrs, cidrs, issues);
  const resourceAnnotations: Array<[string, 'requests' | 'limits', 'cpu' | 'memory']> = [
    [ANNOTATION.proxyCpuRequest, 'requests', 'cpu'],
    [ANNOTATION.proxyMemoryRequest, 'requests', 'memory'],
    [ANNOTATION.proxyCpuLimit, 'limits', 'cpu'],
    [ANNOTATION.proxyMemoryLimit, 'limits', 'memory'],
  ];
  for (const [annotation, kind, resource] of resourceAnnotations) {
    const value = annotations[annotation];
    if (value === undefined) continue;
    const quantity = parseQuantity(annotation, value, issues);
    if (quantity !== undefined) knobs.proxyResources[kind][resource] = quantity;
  }
  const mode = annotations[ANNOTATION.mode];
  if (mode !== undefined && !(MODES as readonly string[]).includes(mode.trim())) {
    issues.push({ annotation: ANNOTATION.mode, value: mode, message: `'${mode}' is not a mode; use one of ${MODES.join(', ')}` });
  }
  const inject = annotations[ANNOTATION.inject];
  if (inject !== undefined && !['true', 'false'].includes(inject.trim().toLowerCase())) {
    issues.push({ annotation: ANNOTATION.inject, value: inject, message: `'${inject}' is not "true" or "false"` });
  }
  return knobs;
}

export function formatAnnotationIssue(issue: AnnotationIssue): string {
  return `${issue.annotation}: ${issue.message}`;
}
