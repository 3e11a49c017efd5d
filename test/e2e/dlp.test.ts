// DLP and compliance by label end to end (issue 19): real clients (curl over HTTP/1.1 and h2c,
// a Node client writing a request in many small segments) through the sidecar to servers that
// log what they received (tools/dlp-servers.mjs). A blocked body is proved from the SERVER's
// log: it began the request and never completed its body. A cluster rule with
// `appliesTo: {labels: {pci: "true"}}` acts only once the pod carries the label (the downward
// API labels file changes while the sidecar runs).
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, TOOLS, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'dl', subnet: 136 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const podInfo = join(topo.dir, 'pod');
const CARD = '4111 1111 1111 1111';
const seen: string[] = [];
const seenWaiters: Array<{ match: (l: string) => boolean; resolve: () => void }> = [];

const CONFIG = `mode: protect
defaultAction: allow
tunnels: off
podInfo: ${podInfo}
clusterRules: ${join(topo.dir, 'cluster.yaml')}
dlp:
  action: block
  sensors: [us-ssn]
`;
// The security team's rule: in pods labelled pci=true, no card number leaves the pod.
const CLUSTER = `- id: pci-no-pan-egress
  action: deny
  direction: egress
  appliesTo: { labels: { pci: "true" } }
  dlp: [pci-pan]
`;

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const pad = (n: number) => 'a'.repeat(n);
const curl = (args: string[]) => topo.execAsync(topo.podNs, 'curl', ['-s', '--max-time', '10', ...args], { uid: APP_UID });
const dlpAlert = (r: FlowRecordLine) => r.type === 'alert' && r.dlp !== undefined;

function waitSeen(match: (l: string) => boolean, timeoutMs = 10_000): Promise<void> {
  if (seen.some(match)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server never logged it; log: ${seen.slice(-8).join(' | ')}`)), timeoutMs);
    seenWaiters.push({ match, resolve: () => { clearTimeout(timer); resolve(); } });
  });
}

/**
 * POSTs `body` with curl (HTTP/1.1, or h2c with prior knowledge) or nghttp; returns the HTTP
 * status. (curl 7.88 fails a stream whose response arrives, and whose stream is then reset with
 * NO_ERROR, while it is still uploading — RFC 9113 §8.1 allows exactly that — so the cut
 * request over HTTP/2 is sent with nghttp, which reads the 403.)
 */
async function post(path: string, body: Buffer, opts: { h2?: boolean | 'nghttp'; headers?: string[] } = {}): Promise<string> {
  const file = topo.writeFile(`body-${path.replaceAll('/', '_')}`, '');
  writeFileSync(file, body);
  const url = opts.h2 !== undefined && opts.h2 !== false ? `http://${peer}:8080${path}` : `http://${peer}${path}`;
  if (opts.h2 === 'nghttp') {
    const n = await topo.execAsync(topo.podNs, 'nghttp', ['-v', '-t', '10', '-d', file, url], { uid: APP_UID });
    return /:status: (\d+)/.exec(n.stdout)?.[1] ?? `nghttp exit ${n.status}`;
  }
  const r = await curl([...(opts.h2 === true ? ['--http2-prior-knowledge'] : []), '-o', '/dev/null', '-w', '%{http_code}', '--data-binary', `@${file}`, ...(opts.headers ?? []).flatMap((h) => ['-H', h]), url]);
  return r.stdout;
}

let markers = 0;
/**
 * The server never completed `path`'s body: what a blocked request looks like from the server.
 * It may have begun it (head and part of the body forwarded, then reset) or never seen it (the
 * hit came in the first read): a clean marker request afterwards is served once the server has
 * handled what came before it; a begun request is waited for until the server ends it.
 */
async function expectCutAtServer(path: string, proto = 'h1'): Promise<void> {
  const marker = `/marker/${++markers}`;
  expect(await post(marker, Buffer.from('{"ok":true}'))).toBe('200');
  await waitSeen((l) => l.startsWith(`seen complete h1 ${marker} `));
  if (seen.some((l) => l.startsWith(`seen begin ${proto} `) && l.endsWith(` ${path}`))) {
    await waitSeen((l) => l.startsWith(`seen aborted ${proto} ${path} `) || l.startsWith(`seen complete ${proto} ${path} `));
  }
  expect(seen.filter((l) => l.startsWith(`seen complete ${proto} ${path} `))).toEqual([]);
}

let labelReloads = 0;
async function setLabels(labels: string): Promise<void> {
  const before = (sidecar.stderr.match(/rules reloaded/g) ?? []).length;
  writeFileSync(join(podInfo, 'labels'), labels);
  const deadline = Date.now() + 10_000;
  while ((sidecar.stderr.match(/rules reloaded/g) ?? []).length === before) {
    if (Date.now() > deadline) throw new Error(`no reload after the label change; stderr: ${sidecar.stderr.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  labelReloads++;
}

beforeAll(async () => {
  topo.create();
  mkdirSync(podInfo, { recursive: true });
  writeFileSync(join(podInfo, 'namespace'), 'shop');
  writeFileSync(join(podInfo, 'labels'), 'app="checkout"\n');
  topo.writeFile('cluster.yaml', CLUSTER);
  const servers = topo.start(topo.peerNs, NODE, [join(TOOLS, 'dlp-servers.mjs'), peer]);
  servers.stdout?.setEncoding('utf8').on('data', (d: string) => {
    for (const line of d.split('\n')) {
      if (!line.startsWith('seen ')) continue;
      seen.push(line);
      for (const w of seenWaiters.splice(0)) (w.match(line) ? w.resolve : () => seenWaiters.push(w))();
    }
  });
  await waitForLine(servers, (l) => l === 'listening', 15_000, 'dlp servers');
  sidecar.init();
  await sidecar.start(CONFIG);
}, 90_000);

afterAll(async () => {
  await sidecar.stop('SIGKILL');
  await topo.destroy();
});

const cardBody = (n: number) => Buffer.from(`{"note":"${pad(n)}","card":"${CARD}","tail":"${pad(n)}"}`);

describe('compliance by label: appliesTo follows the pod labels file', () => {
  it('without pci=true the rule is not in force: a card number is served in full', async () => {
    const body = cardBody(100);
    expect(await post('/pay/unlabelled', body)).toBe('200');
    await waitSeen((l) => l.startsWith('seen complete h1 /pay/unlabelled '));
    expect(seen).toContain(`seen complete h1 /pay/unlabelled ${body.length} ${sha(body)}`);
  });

  it('once the label is added to the running pod, the same request is blocked: 403 naming the rule, the server never completes the body', async () => {
    await setLabels('app="checkout"\npci="true"\n');
    const body = cardBody(200_000);
    expect(await post('/pay/labelled', body)).toBe('403');
    await expectCutAtServer('/pay/labelled');
    const alert = await sidecar.waitForRecord((r) => dlpAlert(r) && (r.l7 as { path?: string }).path === '/pay/labelled');
    expect(alert).toMatchObject({ verdict: 'denied', ruleId: 'pci-no-pan-egress', dlp: { sensor: 'pci-pan', where: 'request-body', blocked: true, sample: '4111 **** **** 1111' } });
    // Never the value itself, in any record.
    expect(sidecar.records.filter((r) => JSON.stringify(r).includes('1111 1111 1111')).length).toBe(0);
  });

  it('the same in a gzip body, in HTTP/2 (h2c), and split across many small segments', async () => {
    expect(await post('/pay/gzip', gzipSync(cardBody(50_000)), { headers: ['content-encoding: gzip'] })).toBe('403');
    await expectCutAtServer('/pay/gzip');
    expect(await post('/pay/h2', cardBody(200_000), { h2: 'nghttp' })).toBe('403');
    await expectCutAtServer('/pay/h2', 'h2');
    // 60 writes of a few bytes, 10 ms apart, the card number spread over a dozen of them.
    const body = `card=${CARD}&note=${pad(30)}`;
    const request = `POST /pay/segments HTTP/1.1\r\nHost: ${peer}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const pieces: string[] = [];
    for (let i = 0; i < request.length; i += 3) pieces.push(request.slice(i, i + 3));
    const script = `const s=require('net').connect(80,process.argv[1]);s.setNoDelay(true);const parts=JSON.parse(process.argv[2]);let out='';s.on('data',d=>out+=d);s.on('error',()=>{});s.on('close',()=>{console.log(out.split('\\r\\n')[0]||'closed');process.exit(0)});(async()=>{for(const p of parts){if(s.destroyed)break;s.write(p);await new Promise(r=>setTimeout(r,10))}})()`;
    const r = await topo.execAsync(topo.podNs, NODE, ['-e', script, peer, JSON.stringify(pieces)], { uid: APP_UID });
    expect(r.stdout.trim()).toBe('HTTP/1.1 403 Forbidden');
    await expectCutAtServer('/pay/segments');
  }, 30_000);

  it('removing the label takes the rule out of force again', async () => {
    await setLabels('app="checkout"\n');
    const body = cardBody(10);
    expect(await post('/pay/unlabelled-again', body)).toBe('200');
    await waitSeen((l) => l === `seen complete h1 /pay/unlabelled-again ${body.length} ${sha(body)}`);
    expect(labelReloads).toBe(2);
  });
});

describe('config dlp (block us-ssn) in every pod', () => {
  it('a response carrying an SSN is cut: the client never receives it, the connection is reset', async () => {
    // The body goes to curl's stdout: curl runs as the app's uid and could not write a file in
    // the topology's directory (it then fails with 23 and resets the connection itself, before
    // the proxy has read the SSN: a pass that proves nothing).
    const r = await curl(['-o', '-', `http://${peer}/respond/ssn`]);
    await waitSeen((l) => l.startsWith('seen sent /respond/ssn '));
    expect(r.stdout).not.toContain('536-22-1234');
    // 56: the connection was reset while curl was still receiving the announced body.
    expect(r.status).toBe(56);
    const alert = await sidecar.waitForRecord((x) => dlpAlert(x) && (x.dlp as { where?: string }).where === 'response-body');
    expect(alert).toMatchObject({ verdict: 'denied', ruleId: 'dlp:us-ssn', dlp: { sensor: 'us-ssn', sample: '***-**-1234', blocked: true } });
  });

  it('an SSN in a request trailer field (HTTP/1.1 chunked, HTTP/2) never reaches the server; a clean trailer does', async () => {
    // Node's own clients: curl's command line sends no trailers.
    const h1 = `const [host,path,name,value]=process.argv.slice(1);const req=require('http').request({host,port:80,path,method:'POST',headers:{'transfer-encoding':'chunked',trailer:name}},(res)=>{console.log(res.statusCode);res.resume();res.on('end',()=>process.exit(0))});req.on('error',(e)=>{console.log('error '+e.code);process.exit(0)});req.write('{"order":17}');req.addTrailers({[name]:value});req.end()`;
    const h2 = `const [host,path,name,value]=process.argv.slice(1);const c=require('http2').connect('http://'+host+':8080');c.on('error',()=>{});const s=c.request({':method':'POST',':path':path},{waitForTrailers:true});s.on('wantTrailers',()=>s.sendTrailers({[name]:value}));s.on('response',(h)=>console.log(h[':status']));s.on('error',(e)=>console.log('error '+e.code));s.on('close',()=>{c.close()});s.resume();s.end('{"order":17}')`;
    const send = async (script: string, path: string, name: string, value: string) => (await topo.execAsync(topo.podNs, NODE, ['-e', script, peer, path, name, value], { uid: APP_UID })).stdout.trim().split('\n')[0];
    for (const [proto, script] of [['h1', h1], ['h2', h2]] as const) {
      expect(await send(script, `/trailer/clean-${proto}`, 'x-checksum', 'abc123')).toBe('200');
      await waitSeen((l) => l.startsWith(`seen trailers ${proto} /trailer/clean-${proto} `));
      expect(seen).toContain(`seen trailers ${proto} /trailer/clean-${proto} {"x-checksum":"abc123"}`);
      expect(await send(script, `/trailer/ssn-${proto}`, 'x-ssn', '536-22-1234')).toBe('403');
      await expectCutAtServer(`/trailer/ssn-${proto}`, proto);
      expect(seen.filter((l) => l.includes('536-22-1234'))).toEqual([]);
      const alert = await sidecar.waitForRecord((x) => dlpAlert(x) && (x.l7 as { path?: string }).path === `/trailer/ssn-${proto}`);
      expect(alert).toMatchObject({ verdict: 'denied', dlp: { sensor: 'us-ssn', where: 'header', field: 'x-ssn', blocked: true } });
    }
  }, 30_000);

  it('the clean corpus passes untouched (HTTP/1.1, h2c, gzip; request and response bodies, byte for byte)', async () => {
    const alertsBefore = sidecar.records.filter(dlpAlert).length;
    const docs = [
      JSON.stringify({ orders: Array.from({ length: 200 }, (_, i) => ({ id: `ORD-2026-${String(i).padStart(6, '0')}`, ts: new Date(1764767655123 + i * 997).toISOString(), epochNs: `${1764767655123456789n + BigInt(i)}`, phone: `+1 (415) 555-${String(1000 + i)}`, uuid: `3f2c1e9a-8b7d-4c6e-9f1a-${String(i).padStart(12, '0')}`, amount: i * 13.37, ratio: i / 7 })) }),
      `data:image/png;base64,${Buffer.from(Array.from({ length: 30_000 }, (_, i) => (i * 7919) % 251)).toString('base64')}`,
      JSON.stringify({ snowflake: '1864767655123456789', big: 9223372036854775807n.toString(), hex: 'deadbeef'.repeat(8), tracking: '1Z999AA10123456784', sku: 'SKU-0043-1182-77' }),
    ];
    for (const [i, doc] of docs.entries()) {
      const body = Buffer.from(doc);
      expect(await post(`/clean/h1-${i}`, body)).toBe('200');
      expect(await post(`/clean/h2-${i}`, body, { h2: true })).toBe('200');
      const gz = gzipSync(body);
      expect(await post(`/clean/gz-${i}`, gz, { headers: ['content-encoding: gzip'] })).toBe('200');
      await waitSeen((l) => l.startsWith(`seen complete h1 /clean/gz-${i} `));
      expect(seen).toContain(`seen complete h1 /clean/h1-${i} ${body.length} ${sha(body)}`);
      expect(seen).toContain(`seen complete h2 /clean/h2-${i} ${body.length} ${sha(body)}`);
      expect(seen).toContain(`seen complete h1 /clean/gz-${i} ${gz.length} ${sha(gz)}`);
    }
    const r = await curl(['-o', '-', `http://${peer}/respond/clean`]);
    await waitSeen((l) => l.startsWith('seen sent /respond/clean '));
    expect(seen).toContain(`seen sent /respond/clean ${sha(r.stdout)}`);
    expect(sidecar.records.filter(dlpAlert).length).toBe(alertsBefore);
  }, 60_000);

  it('every record validates against the flow-record schema; every accepted connection has one final record', async () => {
    assertValidFlowRecords(sidecar.records);
    const { accepted, recorded } = await sidecar.stopAndCheckRecords();
    expect(recorded).toBe(accepted);
  });
});
