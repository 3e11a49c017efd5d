// Redis per-command rules against a real redis-server (issue 17): denied commands never reach the
// server — proved by the server's own MONITOR stream (every command it runs, in order) and its
// keyspace — and are answered `-ERR denied by sidewall (rule …)` in order among the replies, on a
// connection that stays usable: redis-cli (RESP2 and RESP3) and a raw pipelining client.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'dbr', subnet: 132 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
/** Every command redis-server ran, as MONITOR prints it (`... "SET" "session:1" "a"`). */
const monitored: string[] = [];

const CONFIG = `mode: protect
defaultAction: deny
tunnels: off
ports:
  "6379": redis
rules:
  - id: no-admin
    action: deny
    redis: { commands: [FLUSHALL, FLUSHDB, CONFIG, EVAL, EVALSHA, KEYS, DEBUG, MODULE] }
  - id: sessions
    action: allow
    redis: { commands: [GET, SET, DEL, MGET, MSET, INCR], keys: ["session:*"] }
  - id: plumbing
    action: allow
    redis: { commands: [PING, HELLO, AUTH, MULTI, EXEC, DISCARD, SELECT, ECHO] }
`;

const cli = (args: string[], input?: string) =>
  topo.execAsync(topo.podNs, 'sh', ['-c', `${input === undefined ? '' : `printf '${input}' | `}redis-cli -h ${peer} ${args.join(' ')}`], { uid: APP_UID });

/** Writes `payload` (latin1) in one go and prints what came back once `until` is in it (or after 3 s). */
const RAW = `const s=require('net').connect(6379,process.argv[1]);let out='';const until=process.argv[3];s.on('data',d=>{out+=d.toString('latin1');if(out.includes(until)){console.log(JSON.stringify(out));process.exit(0)}});s.on('error',e=>{console.log(JSON.stringify('error '+e.message));process.exit(0)});s.on('close',()=>{console.log(JSON.stringify(out+'<closed>'));process.exit(0)});s.write(Buffer.from(process.argv[2],'latin1'));setTimeout(()=>{console.log(JSON.stringify(out+'<timeout>'));process.exit(0)},3000)`;
const raw = async (payload: string, until: string): Promise<string> => {
  const r = await topo.execAsync(topo.podNs, NODE, ['-e', RAW, peer, payload, until], { uid: APP_UID });
  return JSON.parse(r.stdout.trim()) as string;
};
const cmd = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

/** Resolves once MONITOR has shown a command containing `marker` (commands run in order per connection). */
async function seenByServer(marker: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (monitored.some((l) => l.includes(marker))) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`redis-server never ran ${marker}; saw ${monitored.slice(-10).join(' | ')}`);
}

beforeAll(async () => {
  topo.create();
  const uid = Number(spawnSync('id', ['-u', 'redis'], { encoding: 'utf8' }).stdout.trim()) || 65534;
  const data = join(topo.dir, 'redis');
  mkdirSync(data);
  spawnSync('chown', [String(uid), data]);
  const server = topo.start(topo.peerNs, 'redis-server', ['--port', '6379', '--bind', peer, '--dir', data, '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning'], { uid });
  server.stdout?.resume();
  for (let i = 0; i < 100; i++) {
    if (topo.exec(topo.peerNs, 'redis-cli', ['-h', peer, 'PING']).stdout.trim() === 'PONG') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const monitor = topo.start(topo.peerNs, 'redis-cli', ['-h', peer, 'MONITOR']);
  await waitForLine(monitor, (l) => l === 'OK', 5000, 'redis MONITOR');
  monitor.stdout?.setEncoding('utf8').on('data', (d: string) => monitored.push(...d.split('\n').filter(Boolean)));
  topo.exec(topo.peerNs, 'redis-cli', ['-h', peer, 'SET', 'secret:1', 'keep']);
  sidecar.init();
  await sidecar.start(CONFIG);
}, 60_000);

afterAll(async () => {
  await sidecar.stopAndCheckRecords();
  await topo.destroy();
});

describe('Redis commands and keys (redis-server, redis-cli)', () => {
  it('one redis-cli connection: allowed, denied, allowed — the denied never run, the session goes on', async () => {
    const r = await cli([], 'SET session:1 a\\nFLUSHALL\\nGET secret:1\\nCONFIG SET dir /tmp\\nGET session:1\\nECHO done-resp2\\n');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([
      'OK',
      'ERR denied by sidewall (rule no-admin)',
      'ERR denied by sidewall (rule default)',
      'ERR denied by sidewall (rule no-admin)',
      'a',
      'done-resp2',
    ]);
    await seenByServer('"done-resp2"');
    expect(monitored.some((l) => l.includes('"FLUSHALL"'))).toBe(false);
    expect(monitored.some((l) => l.includes('"CONFIG"'))).toBe(false);
    expect(monitored.some((l) => l.includes('"GET" "secret:1"'))).toBe(false);
    expect(monitored.some((l) => l.includes('"SET" "session:1" "a"'))).toBe(true);
    // The keyspace says the same: FLUSHALL did not run.
    expect(topo.exec(topo.peerNs, 'redis-cli', ['-h', peer, 'GET', 'secret:1']).stdout.trim()).toBe('keep');
    const denied = await sidecar.waitForRecord((x) => x.type === 'request' && x.protocol === 'redis' && (x.l7 as { command?: string }).command === 'FLUSHALL');
    expect([denied.verdict, denied.ruleId]).toEqual(['denied', 'no-admin']);
    const allowed = await sidecar.waitForRecord((x) => x.type === 'request' && x.protocol === 'redis' && (x.l7 as { command?: string }).command === 'SET');
    expect(allowed.verdict).toBe('allowed');
    expect((allowed.l7 as { keys?: string[] }).keys).toEqual(['session:1']);
  });

  it('RESP3 (redis-cli -3, HELLO 3): the same verdicts', async () => {
    const r = await cli(['-3'], 'SET session:3 x\\nKEYS *\\nGET session:3\\nECHO done-resp3\\n');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['OK', '(error) ERR denied by sidewall (rule no-admin)', '"x"', '"done-resp3"'].map((l) => l.replace(/^"(.*)"$/, '$1').replace(/^\(error\) /, '')));
    await seenByServer('"done-resp3"');
    expect(monitored.some((l) => l.includes('"KEYS"'))).toBe(false);
  });

  it('pipelined in one write, with a denied command inside MULTI: replies in order, the transaction aborted', async () => {
    const payload = cmd('SET', 'session:p', '1') + cmd('EVAL', 'return 1', '0') + cmd('INCR', 'session:p') + cmd('MSET', 'session:q', '1', 'secret:q', '2')
      + cmd('MULTI') + cmd('INCR', 'session:p') + cmd('FLUSHDB') + cmd('EXEC') + cmd('GET', 'session:p') + cmd('ECHO', 'done-pipe');
    const out = await raw(payload, 'done-pipe\r\n');
    expect(out).toBe([
      '+OK', '-ERR denied by sidewall (rule no-admin)', ':2', '-ERR denied by sidewall (rule default)',
      '+OK', '+QUEUED', '-ERR denied by sidewall (rule no-admin)', '-EXECABORT Transaction discarded because of previous errors.',
      '$1', '2', '$9', 'done-pipe', '',
    ].join('\r\n'));
    await seenByServer('"done-pipe"');
    // The server ran the transaction's DISCARD, never its EXEC nor the INCR queued in it (MONITOR
    // shows queued commands only when EXEC runs them).
    const tail = monitored.slice(monitored.findIndex((l) => l.includes('"SET" "session:p"')));
    const commands = tail.map((l) => /\] "([A-Z]+)"/.exec(l)?.[1]).filter(Boolean);
    expect(commands).toEqual(['SET', 'INCR', 'MULTI', 'DISCARD', 'GET', 'ECHO']);
    expect(topo.exec(topo.peerNs, 'redis-cli', ['-h', peer, 'GET', 'session:p']).stdout.trim()).toBe('2');
    expect(topo.exec(topo.peerNs, 'redis-cli', ['-h', peer, 'EXISTS', 'secret:q']).stdout.trim()).toBe('0');
  });

  it('inline commands (telnet style) are read as redis-server reads them', async () => {
    const out = await raw('ECHO first\r\nFLUSHALL\r\nGET "secret:1"\r\nECHO done-inline\r\n', 'done-inline\r\n');
    expect(out).toBe('$5\r\nfirst\r\n-ERR denied by sidewall (rule no-admin)\r\n-ERR denied by sidewall (rule default)\r\n$11\r\ndone-inline\r\n');
    await seenByServer('"done-inline"');
    expect(monitored.some((l) => l.includes('"FLUSHALL"'))).toBe(false);
  });
});

describe('flow records', () => {
  it('every record so far validates against the flow-record schema (its protocol\'s l7 fields)', () => {
    expect(sidecar.records.length).toBeGreaterThan(0);
    assertValidFlowRecords(sidecar.records);
  });
});
