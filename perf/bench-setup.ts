// The fixed parts of `npm run bench`: the upstream servers' and HAProxy's configs, and the
// sidecar configs (a realistic ~10-rule policy and a 1,000-rule one) that allow the bench traffic
// through L7 rules, so every request is parsed and decided as in production.
import { stringify } from 'yaml';
import { cleanBody } from './dlp-corpus.js';
import { DIRECT_UID } from '../test/harness/netns.js';

/**
 * Ports the peer namespace serves. udp: a UDP echo responder for new non-DNS UDP flows (the
 * NFQUEUE guard's first-packet path); udpDenied: the same responder on a port no rule allows (the
 * bench proves a flow there is dropped, i.e. that the guard really decides these flows); udpDirect:
 * the same responder for the direct variant, so that its flows (≈ 50,000 a run: the client's source
 * ports wrap within one run) never share a 5-tuple with the sidecar's — conntrack still remembering
 * a direct flow's tuple let the next sidecar run's flow on it pass as already established, undecided.
 */
export const PEER_PORTS = { http: 80, h2c: 8080, grpc: 50051, dns: 53, tls: 443, udp: 7000, udpDenied: 7001, udpDirect: 7002 } as const;
/** nginx's internal sink behind /upload (peer namespace, 127.0.0.1): see nginxConfig. */
const UPLOAD_SINK_PORT = 8081;
/** Size of each dlp-upload body (bench-setup's uploadBody()). */
export const UPLOAD_BYTES = 1024 * 1024;
/** Built-in DLP sensors of the dlp-upload workload's sidecar (all six, as perf/dlp-bench.ts). */
export const DLP_SENSORS = ['pci-pan', 'us-ssn', 'aws-access-key', 'private-key', 'jwt', 'iban'] as const;
/** HAProxy frontends in the pod namespace (127.0.0.1), per mode. */
export const HAPROXY_PORTS = {
  tcp: { http: 18000, h2c: 18001, grpc: 18002, tls: 18003 },
  http: { http: 18100, h2c: 18101, grpc: 18102 },
} as const;

/** The body of /small: exactly 100 bytes, as in issue 7. */
export const SMALL_BODY = 'x'.repeat(99) + '\n';

/**
 * nginx's HTTPS server (the TLS workloads: an allowed TLS connection is opaque to the sidecar after
 * its ClientHello) reads this key and certificate when they exist in `dir` (tlsCertificate()).
 */
export const TLS_FILES = { key: 'tls.key', cert: 'tls.crt' } as const;

/** openssl arguments writing a self-signed P-256 certificate for the TLS workloads into `dir`. */
export function tlsCertificateArgs(dir: string): string[] {
  return ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=bench.test', '-keyout', `${dir}/${TLS_FILES.key}`, '-out', `${dir}/${TLS_FILES.cert}`];
}

export function nginxConfig(dir: string, peerIp: string, tls = false): string {
  // /upload (the dlp-upload workload): nginx must read the whole 1 MiB body before it answers
  // (`return` answers first and discards the body afterwards, and wrk stalls on an answer that
  // comes while it is still writing). The proxy module reads the body into memory
  // (proxy_request_buffering, a 2 MiB buffer: no temp file), then asks an internal sink without
  // the body, over a keep-alive upstream connection: the body is read and dropped.
  const locations = `
    default_type text/plain;
    location = /small { return 200 "${SMALL_BODY.slice(0, 99)}\\n"; }
    location = /upload {
      client_max_body_size 2m;
      client_body_buffer_size 2m;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://upload_sink/ok;
    }
    location / { root ${dir}/www; }`;
  return `daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  upstream upload_sink {
    server 127.0.0.1:${UPLOAD_SINK_PORT};
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${UPLOAD_SINK_PORT};
    location = /ok { return 200 "ok\\n"; }
  }
  server {
    listen ${peerIp}:${PEER_PORTS.http} backlog=4096;${locations}
  }
  server {
    listen ${peerIp}:${PEER_PORTS.h2c} http2 backlog=4096;${locations}
  }${
    tls
      ? `
  server {
    listen ${peerIp}:${PEER_PORTS.tls} ssl backlog=4096;
    ssl_certificate ${dir}/${TLS_FILES.cert};
    ssl_certificate_key ${dir}/${TLS_FILES.key};${locations}
  }`
      : ''
  }
}
`;
}

export function haproxyConfig(peerIp: string): string {
  const frontend = (mode: 'tcp' | 'http', name: 'http' | 'h2c' | 'grpc' | 'tls', port: number, upstream: number): string => {
    const h2 = mode === 'http' && name !== 'http' ? ' proto h2' : '';
    return `
frontend ${mode}_${name}
  mode ${mode}
  bind 127.0.0.1:${port}${h2}
  default_backend ${mode}_${name}_up
backend ${mode}_${name}_up
  mode ${mode}${mode === 'http' ? '\n  http-reuse always' : ''}
  server peer ${peerIp}:${upstream}${h2}
`;
  };
  let text = `global
  nbthread 1
  maxconn 8000
defaults
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  timeout http-keep-alive 600s
`;
  for (const mode of ['tcp', 'http'] as const) {
    const ports = HAPROXY_PORTS[mode];
    text += frontend(mode, 'http', ports.http, PEER_PORTS.http);
    text += frontend(mode, 'h2c', ports.h2c, PEER_PORTS.h2c);
    text += frontend(mode, 'grpc', ports.grpc, PEER_PORTS.grpc);
  }
  // TLS is relayed, never terminated: tcp mode only (the sidecar never decrypts either).
  text += frontend('tcp', 'tls', HAPROXY_PORTS.tcp.tls, PEER_PORTS.tls);
  return text;
}

type Rule = Record<string, unknown>;

/** Rules a real workload might carry; the bench traffic matches the last three (L7 rules). */
function realisticRules(subnet: string): { head: Rule[]; tail: Rule[] } {
  return {
    head: [
      { id: 'deny-cloud-metadata', action: 'deny', direction: 'egress', peer: { cidr: ['169.254.169.254/32'] } },
      { id: 'allow-dns', action: 'allow', direction: 'egress', ports: [PEER_PORTS.dns], dns: { names: ['**.cluster.local', '**.test'] } },
      { id: 'deny-admin-paths', action: 'deny', protocol: 'http', http: { paths: ['/admin/**', '/debug/**'] } },
      { id: 'allow-postgres', action: 'allow', direction: 'egress', peer: { namespace: 'db', labels: { app: 'postgres' } }, ports: [5432], protocol: 'postgres' },
      { id: 'allow-redis', action: 'allow', direction: 'egress', peer: { cidr: ['10.96.0.0/12'] }, ports: [6379], protocol: 'redis' },
      { id: 'allow-frontend-api', action: 'allow', direction: 'ingress', peer: { namespace: 'shop', labels: { app: 'web' } }, ports: [8080], http: { methods: ['GET', 'POST'], paths: ['/api/**'] } },
      { id: 'allow-payments-tls', action: 'allow', direction: 'egress', ports: [443], tls: { sni: ['*.payments.example.com'] } },
      { id: 'allow-metrics-scrape', action: 'allow', direction: 'ingress', peer: { namespace: 'monitoring' }, ports: [9090], http: { methods: ['GET'], paths: ['/metrics'] } },
    ],
    tail: [
      { id: 'allow-bench-http', action: 'allow', direction: 'egress', peer: { cidr: [subnet] }, ports: [PEER_PORTS.http], http: { methods: ['GET', 'POST'], paths: ['/small', '/1m', '/upload'] } },
      { id: 'allow-bench-h2c', action: 'allow', direction: 'egress', peer: { cidr: [subnet] }, ports: [PEER_PORTS.h2c], protocol: 'http2', http: { methods: ['GET'], paths: ['/small'] } },
      { id: 'allow-bench-grpc', action: 'allow', direction: 'egress', peer: { cidr: [subnet] }, ports: [PEER_PORTS.grpc], grpc: { services: ['bench.*'], methods: ['Echo'] } },
      { id: 'allow-bench-tls', action: 'allow', direction: 'egress', peer: { cidr: [subnet] }, ports: [PEER_PORTS.tls], protocol: 'tls' },
      // New UDP flows (udp-flow workload): decided by the NFQUEUE guard; udpDenied has no rule.
      { id: BENCH_UDP_RULE, action: 'allow', direction: 'egress', peer: { cidr: [subnet] }, ports: [PEER_PORTS.udp], protocol: 'udp' },
    ],
  };
}

/** Filler rules for the 1,000-rule policy: half on the bench's own port 80 (other peers, other paths), half spread. */
function fillerRules(count: number): Rule[] {
  return Array.from({ length: count }, (_, i): Rule => {
    const cidr = `10.${100 + (i >> 8)}.${i & 255}.0/24`;
    if (i % 2 === 0) return { id: `filler-${i}`, action: i % 4 === 0 ? 'deny' : 'allow', direction: 'egress', peer: { cidr: [cidr] }, ports: [PEER_PORTS.http], http: { methods: ['GET', 'POST'], paths: [`/svc${i}/**`] } };
    if (i % 3 === 0) return { id: `filler-${i}`, action: 'allow', direction: 'ingress', peer: { namespace: `ns-${i % 40}`, labels: { app: `app-${i}` } }, ports: [2000 + i] };
    return { id: `filler-${i}`, action: 'allow', direction: 'egress', peer: { cidr: [cidr] }, ports: [2000 + i], protocol: 'tcp' };
  });
}

export interface SidecarVariantConfig {
  /** Variant label in the results. */
  name: string;
  ruleCount: number;
  exportStdout: boolean;
  /** DLP on: every request body scanned by DLP_SENSORS, action block (the dlp-upload workload). */
  dlp?: boolean;
  /**
   * The capture volume (a folder of the bench's topology: the default /tmp/sidewall-captures is
   * shared by every sidecar on the machine). Only where captures are started (capture workload);
   * a sidecar with no capture running keeps no taps, so this costs nothing until then.
   */
  captureDir?: string;
}

export function sidecarConfig(variant: SidecarVariantConfig, subnet: string): string {
  const { head, tail } = realisticRules(subnet);
  const filler = fillerRules(Math.max(0, variant.ruleCount - head.length - tail.length));
  return stringify({
    mode: 'protect',
    defaultAction: 'deny',
    ports: { [PEER_PORTS.http]: 'http', [PEER_PORTS.h2c]: 'http2', [PEER_PORTS.grpc]: 'grpc' },
    tunnels: 'alert',
    export: { stdout: variant.exportStdout },
    // Short drain: the bench restarts the sidecar between variants.
    proxy: { drainTimeoutMs: 1000 },
    ...(variant.dlp === true ? { dlp: { action: 'block', sensors: [...DLP_SENSORS] } } : {}),
    // Room for every capture of a run (a keep-alive capture writes ~0.5 KB per request): a budget
    // that fills up would drop frames and make the capture look cheaper than it is.
    ...(variant.captureDir !== undefined ? { capture: { dir: variant.captureDir, maxBytes: 1024 * 1024 * 1024 } } : {}),
    rules: [...head, ...filler, ...tail],
  });
}

/**
 * conntrack's memory of a finished UDP flow in the pod (default 30 s): the udp-flow client walks
 * source ports one by one (45,000 of them), and a port is used again only after this many seconds
 * at up to 40,000 flows/s, so each flow is a NEW one that the guard decides. (At 5 s, a quiet
 * machine's 20,000+ flows/s came back to tuples conntrack still held: those flows passed as
 * established, undecided, and the bench's record check reported it.)
 */
export const UDP_CONNTRACK_TIMEOUT_S = 1;

/** The args of the bench-only mangle rule that keeps DIRECT_UID's non-TCP flows out of the NFQUEUE guard. */
export const DIRECT_UID_NON_TCP_EXEMPTION = (uid: number): string[] => ['-t', 'mangle', '-I', 'OUTPUT', '1', '-m', 'owner', '--uid-owner', String(uid), '!', '-p', 'tcp', '-j', 'RETURN'];

/**
 * The direct path of the udp-flow workload: DIRECT_UID's UDP leaves without the guard (after
 * `sidewall init`, as Topology.exemptDirectUid() does for the nat redirection). Bench only.
 */
export function exemptDirectUidNonTcp(topo: { podNs: string; exec(ns: string, cmd: string, args: string[]): { status: number | null; stderr: string } }): void {
  const r = topo.exec(topo.podNs, 'iptables', DIRECT_UID_NON_TCP_EXEMPTION(DIRECT_UID));
  if (r.status !== 0) throw new Error(`iptables mangle exemption of uid ${DIRECT_UID}: ${r.stderr}`);
}

/** The rule that allows the udp-flow workload's flows (their records name it). */
export const BENCH_UDP_RULE = 'allow-bench-udp';

/**
 * Each upload's body: realistic JSON with nothing sensitive (perf/dlp-corpus.ts, what the in-process
 * DLP benchmarks scan), so DLP scans all of it and passes it. `probe`: the same body with a test
 * card number near its end, which DLP must find (a body scanned only in part would let it through).
 */
export function uploadBody(probe = false): Buffer {
  const body = cleanBody(UPLOAD_BYTES);
  if (probe) Buffer.from('"card":"4111 1111 1111 1111"').copy(body, UPLOAD_BYTES - 200);
  return body;
}

/** wrk's Lua script posting `bodyFile` on every request (wrk builds the request once). */
export function uploadScript(bodyFile: string): string {
  return `local f = assert(io.open("${bodyFile}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
`;
}
