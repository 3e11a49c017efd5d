// Kubelet probes under default-deny. The kubelet probes a pod from the node's IP, so an
// httpGet/tcpSocket probe to an app port arrives as inbound traffic from an address no workload
// rule names and a default-deny sidecar would refuse it: the pod never becomes ready. As Istio
// does, the injector points such probes at the sidecar's admin port (which the init container
// excludes from redirection) under /app-health/<container>/<livez|readyz|startupz>, and hands
// the original probes to the sidecar in SIDEWALL_APP_PROBES; the sidecar (uid 1337, itself
// excluded from redirection) performs them against 127.0.0.1 and answers with the result.
import type { Container, Probe } from './kube-types.js';
import { pointer, type JsonPatchOp } from './json-patch.js';

export const APP_PROBES_ENV = 'SIDEWALL_APP_PROBES';

/** One original probe as the sidecar performs it (the contract with src/admin/app-probes.ts). */
export type AppProbe =
  | { httpGet: { port: number; path: string; scheme: 'HTTP' | 'HTTPS'; httpHeaders: Array<{ name: string; value: string }> }; timeoutSeconds: number }
  | { tcpSocket: { port: number }; timeoutSeconds: number };

export type AppProbes = Record<string, AppProbe>;

const PROBE_KINDS = [
  ['livenessProbe', 'livez'],
  ['readinessProbe', 'readyz'],
  ['startupProbe', 'startupz'],
] as const;

export function appProbePath(container: string, kind: 'livez' | 'readyz' | 'startupz'): string {
  return `/app-health/${container}/${kind}`;
}

function resolvePort(container: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  if (/^[0-9]+$/.test(port)) return Number(port);
  return container.ports?.find((candidate) => candidate.name === port)?.containerPort;
}

export interface ProbeRewrite {
  patch: JsonPatchOp[];
  probes: AppProbes;
  warnings: string[];
}

/**
 * Plans the rewrite of every httpGet/tcpSocket probe of the app containers. `containerPath`
 * names where the containers array lives in the pod ("/spec/containers").
 */
export function rewriteAppProbes(containers: Container[], adminPort: number, containerPath: string): ProbeRewrite {
  const result: ProbeRewrite = { patch: [], probes: {}, warnings: [] };
  containers.forEach((container, index) => {
    for (const [field, kind] of PROBE_KINDS) {
      const probe = container[field];
      if (probe === undefined) continue;
      const original = describeOriginal(container, probe, field, result.warnings);
      if (original === undefined) continue;
      const path = appProbePath(container.name, kind);
      result.probes[path] = original;
      const { httpGet: _httpGet, tcpSocket: _tcpSocket, ...timing } = probe;
      const rewritten: Probe = { ...timing, httpGet: { path, port: adminPort, scheme: 'HTTP' } };
      result.patch.push({ op: 'replace', path: `${containerPath}${pointer(index, field)}`, value: rewritten });
    }
  });
  return result;
}

function describeOriginal(container: Container, probe: Probe, field: string, warnings: string[]): AppProbe | undefined {
  const timeoutSeconds = probe.timeoutSeconds ?? 1;
  if (probe.httpGet !== undefined) {
    // A probe aimed at another host never crosses this pod's firewall; leave it alone.
    if (probe.httpGet.host !== undefined && probe.httpGet.host !== '') return undefined;
    const port = resolvePort(container, probe.httpGet.port);
    if (port === undefined) {
      warnings.push(`container ${container.name}: ${field} names port '${probe.httpGet.port}', which the container does not declare; probe left unchanged and will be subject to the firewall`);
      return undefined;
    }
    return {
      httpGet: {
        port,
        path: probe.httpGet.path ?? '/',
        scheme: probe.httpGet.scheme ?? 'HTTP',
        httpHeaders: probe.httpGet.httpHeaders ?? [],
      },
      timeoutSeconds,
    };
  }
  if (probe.tcpSocket !== undefined) {
    if (probe.tcpSocket.host !== undefined && probe.tcpSocket.host !== '') return undefined;
    const port = resolvePort(container, probe.tcpSocket.port);
    if (port === undefined) {
      warnings.push(`container ${container.name}: ${field} names port '${probe.tcpSocket.port}', which the container does not declare; probe left unchanged and will be subject to the firewall`);
      return undefined;
    }
    return { tcpSocket: { port }, timeoutSeconds };
  }
  if (probe.grpc !== undefined) {
    warnings.push(`container ${container.name}: the gRPC ${field} on port ${probe.grpc.port} is not rewritten; under default-deny it needs a rule allowing ingress to that port`);
  }
  return undefined;
}
