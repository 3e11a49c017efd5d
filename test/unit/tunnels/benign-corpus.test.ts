// False positives: thousands of ordinary exchanges, generated, fed through the inspector API the
// way the firewall feeds it. The target, and the assertion, is zero findings. The counts are
// printed so the report can quote them.
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createTunnelDetection, type TunnelFinding } from '../../../src/tunnels/index.js';
import { exchange, facts, feed, httpConnection, randomBytes, wsFrame } from './helpers.js';

const WORDS = ['cart', 'checkout', 'payments', 'inventory', 'search', 'catalog', 'users', 'auth', 'orders', 'shipping', 'reviews', 'recommendations', 'analytics', 'billing', 'notifications', 'gateway', 'frontend', 'backend', 'metrics', 'logging', 'identity', 'profile', 'media', 'images', 'static', 'assets', 'api', 'internal', 'public', 'staging', 'production', 'canary', 'blue', 'green', 'east', 'west', 'europe', 'asia'];
let seed = 12345;
function rnd(n: number): number {
  // The low bits of an LCG cycle quickly; use the high ones.
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return Math.floor((seed / 0x80000000) * n);
}
const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
const words = (n: number, sep = '-') => Array.from({ length: n }, () => pick(WORDS)).join(sep);

function jsonBody(size: number): Buffer {
  const items: unknown[] = [];
  let length = 2;
  while (length < size) {
    const item = { id: rnd(1e9), sku: `${pick(WORDS)}-${rnd(99999)}`, name: words(3, ' '), price: rnd(100000) / 100, tags: [pick(WORDS), pick(WORDS)], uuid: randomBytes(rnd(1e6) + 1, 16).toString('hex'), updatedAt: new Date(1.7e12 + rnd(1e10)).toISOString() };
    const text = JSON.stringify(item);
    length += text.length + 1;
    items.push(item);
  }
  return Buffer.from(JSON.stringify({ items, next: `/v1/items?cursor=${randomBytes(rnd(1e6) + 1, 12).toString('base64url')}` }));
}

function imageJson(): Buffer {
  const png = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), randomBytes(rnd(1e6) + 1, 3000 + rnd(20000))]);
  return Buffer.from(JSON.stringify({ avatar: `data:image/png;base64,${png.toString('base64')}`, user: words(2) }));
}

function sse(): Buffer {
  let out = '';
  for (let i = 0; i < 20; i++) out += `id: ${i}\nevent: ${pick(WORDS)}\ndata: ${JSON.stringify({ n: i, v: rnd(1000) })}\n\n`;
  return Buffer.from(out);
}

const DOWNLOADS: Array<[string, () => Buffer, Array<[string, string]>?]> = [
  ['application/zip', () => Buffer.concat([Buffer.from('504b0304', 'hex'), randomBytes(rnd(1e6) + 1, 8000)])],
  ['application/octet-stream', () => randomBytes(rnd(1e6) + 1, 20000)],
  ['image/jpeg', () => Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), randomBytes(rnd(1e6) + 1, 9000)])],
  ['application/gzip', () => gzipSync(randomBytes(rnd(1e6) + 1, 5000))],
  ['application/json', () => gzipSync(jsonBody(20000)), [['content-encoding', 'gzip']]],
  ['text/html', () => gzipSync(Buffer.from(`<html><body>${words(400, ' ')}</body></html>`)), [['content-encoding', 'gzip']]],
  ['application/x-protobuf', () => randomBytes(rnd(1e6) + 1, 3000)],
  ['video/mp4', () => Buffer.concat([Buffer.from('000000206674797069736f6d', 'hex'), randomBytes(rnd(1e6) + 1, 30000)])],
];

function collect(into: TunnelFinding[], found: TunnelFinding[]): void {
  into.push(...found);
}

describe('benign corpus', () => {
  it('HTTP/1.1, HTTP/2, gRPC, TLS and WebSocket traffic gives no finding', () => {
    const detection = createTunnelDetection({ ports: { 80: 'http', 8080: 'http', 443: 'tls', 50051: 'grpc', 5432: 'postgres', 6379: 'redis' } });
    const findings: TunnelFinding[] = [];
    let exchanges = 0;
    let connections = 0;
    for (let c = 0; c < 1000; c++) {
      const client = `10.1.${rnd(4)}.${rnd(250) + 1}`;
      const server = `10.2.0.${rnd(20) + 1}`;
      const port = pick([80, 8080, 3000]); // 3000: undeclared, learned
      const { inspector, found } = httpConnection(detection, facts(client, server, port), port === 3000 ? undefined : 'http');
      connections++;
      collect(findings, found);
      const perConnection = 1 + rnd(8); // keep-alive
      for (let r = 0; r < perConnection; r++) {
        exchanges++;
        const host = pick([`${words(1)}.${words(1)}.svc.cluster.local`, `${words(2)}.example.com`, `d${randomBytes(c + r + 1, 7).toString('hex')}.cloudfront.net`]);
        switch (rnd(9)) {
          case 0: // small JSON API call
            collect(findings, exchange(inspector, { method: 'POST', path: `/v1/${pick(WORDS)}`, host, requestHeaders: [['content-type', 'application/json']], requestBody: jsonBody(200), responseHeaders: [['content-type', 'application/json; charset=utf-8']], responseBody: jsonBody(500), piece: 1 + rnd(600) }));
            break;
          case 1: // large JSON listing
            collect(findings, exchange(inspector, { path: `/v1/${pick(WORDS)}?page=${r}`, host, responseHeaders: [['content-type', 'application/json']], responseBody: jsonBody(200_000) }));
            break;
          case 2: // base64 image inside JSON, both ways
            collect(findings, exchange(inspector, { method: 'PUT', path: '/v1/profile/avatar', host, requestHeaders: [['content-type', 'application/json']], requestBody: imageJson(), responseHeaders: [['content-type', 'application/json']], responseBody: imageJson() }));
            break;
          case 3: { // file download with its proper content type
            const [type, make, extra] = pick(DOWNLOADS);
            collect(findings, exchange(inspector, { path: `/files/${rnd(1e6)}`, host, responseHeaders: [['content-type', type], ...(extra ?? [])], responseBody: make() }));
            break;
          }
          case 4: // file upload (multipart) with a JSON answer
            collect(findings, exchange(inspector, { method: 'POST', path: '/upload', host, requestHeaders: [['content-type', 'multipart/form-data; boundary=xyz']], requestBody: Buffer.concat([Buffer.from('--xyz\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n'), randomBytes(c * 7 + r + 1, 5000)]), responseHeaders: [['content-type', 'application/json']], responseBody: Buffer.from('{"ok":true}') }));
            break;
          case 5: // long polling
            collect(findings, exchange(inspector, { path: `/v1/events/poll?since=${rnd(1e9)}&timeout=30`, host, responseHeaders: [['content-type', 'application/json']], responseBody: jsonBody(rnd(2) === 0 ? 2 : 800) }));
            break;
          case 6: // server-sent events
            collect(findings, exchange(inspector, { path: '/v1/stream', host, requestHeaders: [['accept', 'text/event-stream']], responseHeaders: [['content-type', 'text/event-stream']], responseBody: sse(), piece: 40 }));
            break;
          case 7: // HTML and scripts
            collect(findings, exchange(inspector, { path: '/', host, responseHeaders: [['content-type', 'text/html; charset=utf-8']], responseBody: Buffer.from(`<!doctype html><html><head><title>${words(3, ' ')}</title><script>var x=${JSON.stringify(words(50, ' '))};</script></head><body>${'<p>' + words(200, ' ') + '</p>'}\u00e9\u4e2d\u6587</body></html>`) }));
            break;
          default: // binary API both ways, properly typed (protobuf over HTTP/1)
            collect(findings, exchange(inspector, { method: 'POST', path: '/rpc', host, requestHeaders: [['content-type', 'application/x-protobuf']], requestBody: randomBytes(c + r + 3, 300), responseHeaders: [['content-type', 'application/x-protobuf']], responseBody: randomBytes(c + r + 4, 900) }));
        }
      }
      if (rnd(10) === 0) {
        // An allowed WebSocket: JSON text frames and binary frames both ways.
        exchanges++;
        collect(findings, exchange(inspector, { path: '/ws', host: 'chat.example.com', requestHeaders: [['upgrade', 'websocket'], ['connection', 'Upgrade'], ['sec-websocket-key', 'dGhlIHNhbXBsZSBub25jZQ==']], status: 101 }));
        for (let f = 0; f < 10; f++) {
          collect(findings, feed(inspector, 'client', wsFrame(jsonBody(100), 0x1, randomBytes(f + 1, 4))));
          collect(findings, feed(inspector, 'server', wsFrame(randomBytes(f + c + 1, 200), 0x2)));
        }
      }
    }
    // HTTP/2, gRPC, TLS, databases: what their ports carry, and TLS on learned undeclared ports.
    const others: Array<[number, string | undefined, string, Buffer]> = [
      [80, 'http', 'http2', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
      [50051, 'grpc', 'http2', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
      [443, 'tls', 'tls', Buffer.from('160301020001', 'hex')],
      [8443, undefined, 'tls', Buffer.from('160301020001', 'hex')],
      [5432, 'postgres', 'postgres', Buffer.from('0000000804d2162f', 'hex')],
      [6379, 'redis', 'redis', Buffer.from('*1\r\n$4\r\nPING\r\n')],
      [9092, undefined, 'tcp', Buffer.from('000000140003000000000001', 'hex')], // Kafka
    ];
    for (let i = 0; i < 1500; i++) {
      const [port, declared, detected, first] = pick(others);
      const inspector = detection.forConnection(facts(`10.1.0.${rnd(250) + 1}`, `10.3.0.${rnd(5) + 1}`, port), declared);
      connections++;
      exchanges++;
      const f = inspector.onProtocol(detected, first, 'client');
      if (f !== null) findings.push(f);
      if (detected === 'tcp') collect(findings, feed(inspector, 'client', randomBytes(i + 1, 2000)));
    }
    console.log(`benign HTTP/TLS corpus: ${connections} connections, ${exchanges} exchanges, ${findings.length} findings`);
    expect(findings).toEqual([]);
    expect(exchanges).toBeGreaterThan(5000);
  }, 120_000); // CPU-bound (~16 s alone); on the shared 2-core machine under load it has taken 50 s

  it('ordinary DNS traffic gives no finding', () => {
    const monitor = createTunnelDetection({ ports: {} }).dns;
    const findings: TunnelFinding[] = [];
    const names: Array<[string, string]> = [];
    const tlds = ['com', 'net', 'org', 'io', 'dev', 'co.uk', 'de'];
    for (let i = 0; i < 6000; i++) {
      switch (rnd(12)) {
        case 0: names.push([`${words(1)}.${words(1)}.svc.cluster.local`, pick(['A', 'AAAA', 'SRV'])]); break;
        case 1: names.push([`${words(1)}-${rnd(50)}.${words(1)}.pod.cluster.local`, 'A']); break;
        case 2: names.push([`d${randomBytes(i + 1, 7).toString('hex')}.cloudfront.net`, 'A']); break;
        case 3: names.push([`e${rnd(9999)}.dsce${rnd(20)}.akamaiedge.net`, 'A']); break;
        case 4: names.push([`r${rnd(9)}---sn-${randomBytes(i + 3, 4).toString('hex')}.googlevideo.com`, 'AAAA']); break;
        case 5: names.push([`${words(4)}-${rnd(999)}.s3.${pick(['us-east-1', 'eu-west-1'])}.amazonaws.com`, 'A']); break;
        case 6: names.push([`internal-k8s-${words(2)}-${randomBytes(i + 5, 5).toString('hex')}.${pick(['us-east-1', 'eu-west-1'])}.elb.amazonaws.com`, 'A']); break;
        case 7: names.push([`${words(6)}.${words(1)}.${pick(tlds)}`, 'A']); break; // long but normal
        case 8: names.push([`${rnd(255)}.${rnd(255)}.${rnd(255)}.10.in-addr.arpa`, 'PTR']); break;
        case 9: names.push([pick([`_dmarc.${words(1)}.com`, `selector${rnd(3)}._domainkey.${words(1)}.com`, `${words(1)}.com`]), 'TXT']); break;
        case 10: names.push([`${words(1)}.${words(1)}.${pick(tlds)}`, pick(['MX', 'CNAME', 'HTTPS'])]); break;
        default: names.push([`www.${words(1)}${rnd(100)}.${pick(tlds)}`, pick(['A', 'AAAA'])]);
      }
    }
    // 6,000 queries over 20 minutes, in bursts (a pod starting up resolves a lot at once).
    let now = 0;
    for (const [name, type] of names) {
      now += rnd(10) === 0 ? 2000 : rnd(300);
      const q = monitor.onQuery(name, type, now);
      if (q !== null) findings.push(q);
      const r = monitor.onResponse(name, type, type === 'TXT' ? 60 + rnd(450) : 16 * (1 + rnd(8)), 1 + rnd(8), now + 3);
      if (r !== null) findings.push(r);
    }
    console.log(`benign DNS corpus: ${names.length} queries, ${new Set(names.map(([n]) => n)).size} distinct names, ${findings.length} findings`);
    expect(findings).toEqual([]);
  });

  it('a busy Kubernetes pod (ndots:5 search list, SRV, StatefulSets, client-library names) gives no finding', () => {
    // A pod in namespace `shop` resolving through the cluster DNS as Kubernetes sets it up:
    // resolv.conf `search shop.svc.cluster.local svc.cluster.local cluster.local`, `ndots:5`.
    // Every name with fewer than five dots is first tried under each search domain (NXDOMAIN
    // for external names), each try as A and AAAA in parallel (glibc and musl both do).
    const monitor = createTunnelDetection({ ports: {}, namespace: 'shop' }).dns;
    const SEARCH = ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'];
    const alnum = (n: number): string => Array.from({ length: n }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[rnd(36)]!).join('');
    const hex = (n: number): string => randomBytes(rnd(1e6) + 1, Math.ceil(n / 2)).toString('hex').slice(0, n);
    const regions = ['us-east-1', 'eu-west-1', 'ap-southeast-2'];
    // Endpoints client libraries build from account, cluster and deployment ids (hashes and
    // random-looking ids, but a handful of distinct names per parent).
    const fixed = [
      ...Array.from({ length: 3 }, () => `${hex(32)}.${pick(regions)}.aws.found.io`), // Elastic Cloud deployments
      ...Array.from({ length: 2 }, () => `${hex(32).toUpperCase().toLowerCase()}.gr7.${pick(regions)}.eks.amazonaws.com`),
      ...Array.from({ length: 2 }, () => `${hex(32)}.r2.cloudflarestorage.com`),
      ...Array.from({ length: 4 }, () => `${alnum(10)}.execute-api.${pick(regions)}.amazonaws.com`),
      ...Array.from({ length: 3 }, () => `${words(2)}.${alnum(12)}.${pick(regions)}.rds.amazonaws.com`),
      ...Array.from({ length: 2 }, () => `pkc-${alnum(5)}.${pick(regions)}.aws.confluent.cloud`),
      `o${100000 + rnd(899999)}.ingest.sentry.io`,
      `${words(1)}-${hex(16)}.z01.azurefd.net`,
      `7-52-0-app.agent.datadoghq.com`, 'sqs.us-east-1.amazonaws.com', 'sts.amazonaws.com', 'oauth2.googleapis.com', 'storage.googleapis.com',
      `cluster0-shard-00-00.${alnum(5)}.mongodb.net`,
    ];
    const lookups: Array<[string, string]> = [];
    for (let i = 0; i < 12000; i++) {
      switch (rnd(10)) {
        case 0: lookups.push([pick(WORDS), 'A']); break; // a Service of the pod's namespace, by its short name
        case 1: lookups.push([`${pick(WORDS)}.${pick(['payments', 'data', 'monitoring'])}`, 'A']); break; // another namespace's Service
        case 2: lookups.push([`${pick(['web', 'kafka', 'redis', 'zk'])}-${rnd(5)}.${pick(['web', 'kafka-headless', 'redis-headless'])}.data.svc.cluster.local`, 'A']); break;
        case 3: lookups.push([`_${pick(['grpc', 'http', 'kafka'])}._tcp.${pick(WORDS)}.shop.svc.cluster.local`, 'SRV']); break;
        case 4: lookups.push([`${words(3)}-${rnd(999)}.s3.${pick(regions)}.amazonaws.com`, 'A']); break; // buckets
        case 5: lookups.push([`d${alnum(13)}.cloudfront.net`, 'A']); break;
        case 6: lookups.push([`_mongodb._tcp.cluster0.${alnum(5)}.mongodb.net`, 'SRV']); break;
        case 7: lookups.push([`${words(1)}.${words(1)}.${pick(['com', 'io', 'dev', 'net'])}`, 'A']); break;
        default: lookups.push([pick(fixed), 'A']);
      }
    }
    const findings: TunnelFinding[] = [];
    let queries = 0;
    let now = 0;
    // 12,000 lookups in 3 minutes: 4,000 a minute through the one resolver, ~30,000 queries a minute.
    for (const [name, type] of lookups) {
      now += rnd(30);
      const dots = name.split('.').length - 1;
      const tries = name.endsWith('.cluster.local') ? [name] : dots >= 5 ? [name] : [...SEARCH.map((d) => `${name}.${d}`), name];
      for (const tryName of tries) {
        for (const t of type === 'A' ? ['A', 'AAAA'] : [type]) {
          queries++;
          const q = monitor.onQuery(tryName, t, now);
          if (q !== null) findings.push(q);
          const r = monitor.onResponse(tryName, t, 40 + rnd(200), rnd(3), now + 1);
          if (r !== null) findings.push(r);
        }
      }
    }
    console.log(`benign Kubernetes DNS corpus: ${lookups.length} lookups, ${queries} queries in ${Math.round(now / 1000)} s, ${findings.length} findings`);
    if (findings.length > 0) console.log([...new Set(findings.map((f) => f.evidence.slice(0, 140)))].slice(0, 8).join('\n'));
    expect(findings).toEqual([]);
    expect(queries).toBeGreaterThan(60000);
  });
});
