// PostgreSQL users, databases and statements against a real server (issue 17): a denied query
// never reaches it — proved by the server's own log (log_statement=all logs every statement it
// receives, simple and extended) and its catalog — and is answered ErrorResponse 42501 on a
// session that stays usable (psql, and a raw Node client speaking the extended protocol). TLS
// (sslmode=require) stays opaque: allowed only where a rule allows it without L7 facts.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'dbp', subnet: 133 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const PG_BIN = '/usr/lib/postgresql/15/bin';
/** The server's log lines (stderr): `LOG:  statement: ...`, `LOG:  execute <unnamed>: ...`. */
let serverLog = '';

const CONFIG = `mode: protect
defaultAction: deny
tunnels: off
ports:
  "5432": postgres
  "5433": postgres
rules:
  - id: tls-port
    action: allow
    protocol: postgres
    ports: [5433]
  - id: no-ddl
    action: deny
    postgres: { statements: [DDL, COPY] }
  - id: no-admin
    action: deny
    postgres: { users: [admin] }
  - id: app
    action: allow
    postgres: { users: [app], databases: [shop], statements: [SELECT, INSERT, UPDATE, BEGIN, COMMIT, SET] }
`;

/** psql as an app uid; `input`: a script on stdin (psql sends each statement as its own query). */
const psql = (args: string[], input?: string) => {
  if (input === undefined) return topo.execAsync(topo.podNs, 'env', [`HOME=${topo.dir}`, 'PGCONNECT_TIMEOUT=5', 'psql', '-X', '-q', '-At', ...args], { uid: APP_UID });
  const file = topo.writeFile(`script-${Math.random().toString(36).slice(2)}.sql`, input);
  return topo.execAsync(topo.podNs, 'env', [`HOME=${topo.dir}`, 'PGCONNECT_TIMEOUT=5', 'psql', '-X', '-q', '-At', '-f', file, ...args], { uid: APP_UID });
};
const conn = (extra = '', port = 5432) => `host=${peer} port=${port} user=app dbname=shop sslmode=disable ${extra}`.trim();

async function logged(marker: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (serverLog.includes(marker)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`the server never logged ${marker}; log tail: ${serverLog.slice(-1500)}`);
}

/** Extended protocol by hand: startup, then the given messages in one write; prints message types and SQLSTATEs until `zCount` ReadyForQuery. */
const EXTENDED = `
const net=require('net');const [host,spec,zWant]=[process.argv[1],JSON.parse(process.argv[2]),Number(process.argv[3])];
const m=(t,b)=>{const h=Buffer.alloc(5);h.write(t,0,'latin1');h.writeUInt32BE(4+b.length,1);return Buffer.concat([h,b])};
const z=(s)=>Buffer.from(s+'\\0');
const enc={P:(q)=>m('P',Buffer.concat([z(''),z(q),Buffer.from([0,0])])),B:()=>m('B',Buffer.from([0,0,0,0,0,0,0,0])),E:()=>m('E',Buffer.from([0,0,0,0,0])),S:()=>m('S',Buffer.alloc(0)),Q:(q)=>m('Q',z(q))};
const s=net.connect(5432,host);let buf=Buffer.alloc(0);const out=[];let zs=0;let started=false;
const body=Buffer.from('user\\0app\\0database\\0shop\\0\\0');const st=Buffer.alloc(8);st.writeUInt32BE(8+body.length,0);st.writeUInt32BE(0x30000,4);
s.write(Buffer.concat([st,body]));
s.on('data',d=>{buf=Buffer.concat([buf,d]);while(buf.length>=5){const len=buf.readUInt32BE(1);if(buf.length<1+len)break;const t=String.fromCharCode(buf[0]);const p=buf.subarray(5,1+len);buf=buf.subarray(1+len);
 if(!started){if(t==='Z'){started=true;s.write(Buffer.concat(spec.map(([k,a])=>enc[k](a))))}continue}
 if(t==='E'){out.push('E:'+/C([0-9A-Z]{5})\\0/.exec(p.toString('latin1'))[1])}else if(t==='D'){out.push('D:'+p.toString('latin1',6))}else out.push(t);
 if(t==='Z'&&++zs===zWant){console.log(JSON.stringify(out));process.exit(0)}}});
s.on('close',()=>{console.log(JSON.stringify([...out,'closed']));process.exit(0)});s.on('error',()=>{});
setTimeout(()=>{console.log(JSON.stringify([...out,'timeout']));process.exit(0)},5000);`;
const extended = async (spec: Array<[string, string?]>, zCount: number): Promise<string[]> => {
  const r = await topo.execAsync(topo.podNs, NODE, ['-e', EXTENDED, peer, JSON.stringify(spec), String(zCount)], { uid: APP_UID });
  return JSON.parse(r.stdout.trim()) as string[];
};

beforeAll(async () => {
  topo.create();
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const data = join(topo.dir, 'pg');
  mkdirSync(data);
  spawnSync('chown', [String(uid), data]);
  const init = topo.exec(topo.peerNs, `${PG_BIN}/initdb`, ['-D', join(data, 'db'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C'], { uid });
  if (init.status !== 0) throw new Error(`initdb: ${init.stderr}`);
  const cert = join(data, 'server.crt');
  const key = join(data, 'server.key');
  topo.exec(topo.peerNs, 'openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=db', '-keyout', key, '-out', cert]);
  spawnSync('chown', [String(uid), cert, key]);
  chmodSync(key, 0o600);
  writeFileSync(join(data, 'db', 'pg_hba.conf'), 'local all all trust\nhost all all 0.0.0.0/0 trust\n');
  const server = topo.start(topo.peerNs, `${PG_BIN}/postgres`, ['-D', join(data, 'db'), '-c', `listen_addresses=${peer}`, '-c', 'port=5432', '-c', `unix_socket_directories=${data}`,
    '-c', 'log_statement=all', '-c', 'log_connections=on', '-c', 'logging_collector=off', '-c', 'ssl=on', '-c', `ssl_cert_file=${cert}`, '-c', `ssl_key_file=${key}`, '-c', 'fsync=off', '-c', 'shared_buffers=16MB'], { uid });
  server.stderr?.setEncoding('utf8').on('data', (d: string) => (serverLog += d));
  await logged('database system is ready to accept connections', 30_000);
  const setup = topo.exec(topo.peerNs, 'psql', ['-X', '-q', '-h', data, '-U', 'postgres', '-c', 'CREATE ROLE app LOGIN', '-c', 'CREATE ROLE admin LOGIN SUPERUSER', '-c', 'CREATE DATABASE shop OWNER app']);
  if (setup.status !== 0) throw new Error(`setup: ${setup.stderr}`);
  topo.exec(topo.peerNs, 'psql', ['-X', '-q', '-h', data, '-U', 'app', '-d', 'shop', '-c', 'CREATE TABLE items (id int); INSERT INTO items VALUES (1);']);
  // A second port for the TLS case (rule tls-port): socat in front of the same server.
  const fwd = topo.start(topo.peerNs, 'socat', [`TCP-LISTEN:5433,bind=${peer},reuseaddr,fork`, `TCP:${peer}:5432`]);
  fwd.stdout?.resume();
  sidecar.init();
  await sidecar.start(CONFIG);
  void waitForLine;
}, 90_000);

afterAll(async () => {
  if (sidecar.records.length > 0) await sidecar.stopAndCheckRecords();
  await topo.destroy();
});

const catalogHasItems = () => topo.exec(topo.peerNs, 'psql', ['-X', '-At', '-h', join(topo.dir, 'pg'), '-U', 'postgres', '-d', 'shop', '-c', "SELECT count(*) FROM pg_tables WHERE tablename = 'items'"]).stdout.trim();

describe('PostgreSQL statements (postgres 15, psql)', () => {
  it('one psql session: allowed, denied, allowed — the denied never reach the server, the session goes on', async () => {
    const r = await psql([conn()], "SELECT count(*) FROM items;\nDROP TABLE items;\nINSERT INTO items VALUES (2);\nDELETE FROM items;\nSELECT 'done-psql';\n");
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['1', 'done-psql']);
    expect(r.stderr).toContain('permission denied by sidewall (rule no-ddl): DROP');
    expect(r.stderr).toContain('permission denied by sidewall (rule default): DELETE');
    await logged("statement: SELECT 'done-psql'");
    expect(serverLog).toContain('statement: INSERT INTO items VALUES (2)');
    expect(serverLog).not.toContain('DROP TABLE items');
    expect(serverLog).not.toContain('DELETE FROM items');
    expect(catalogHasItems()).toBe('1');
    const rec = await sidecar.waitForRecord((x) => x.type === 'request' && x.protocol === 'postgres' && (x.l7 as { statement?: string }).statement === 'DROP');
    expect([rec.verdict, rec.ruleId, (rec.l7 as { user?: string }).user]).toEqual(['denied', 'no-ddl', 'app']);
  });

  it('several statements in one query: one denied refuses the query', async () => {
    const r = await psql([conn(), '-c', 'SELECT 11; TRUNCATE items']);
    expect(r.stderr).toContain('rule no-ddl');
    const ok = await psql([conn(), '-c', "SELECT 'done-multi'"]);
    expect(ok.stdout.trim()).toBe('done-multi');
    await logged("statement: SELECT 'done-multi'");
    expect(serverLog).not.toContain('TRUNCATE');
  });

  it('extended protocol, pipelined: the denied Parse and what follows it up to Sync are dropped; the session goes on', async () => {
    const out = await extended([['P', 'SELECT 42'], ['B'], ['E'], ['P', 'DROP TABLE items'], ['B'], ['E'], ['S'], ['Q', "SELECT 'done-ext'"]], 2);
    expect(out).toEqual(['1', '2', 'D:42', 'C', 'E:42501', 'Z', 'T', 'D:done-ext', 'C', 'Z']);
    await logged("statement: SELECT 'done-ext'");
    expect(serverLog).toContain('execute <unnamed>: SELECT 42');
    expect(serverLog).not.toContain('DROP TABLE items');
    expect(catalogHasItems()).toBe('1');
  });

  it('a denied user never gets a session', async () => {
    const r = await psql([`host=${peer} user=admin dbname=shop sslmode=disable`, '-c', 'SELECT 1']);
    expect(r.stderr).toContain('permission denied by sidewall (rule no-admin)');
    expect(serverLog).not.toContain('user=admin');
  });

  it('TLS stays opaque: allowed where a rule needs no L7 facts, refused where a statement rule could apply', async () => {
    const ok = await psql([conn('', 5433).replace('sslmode=disable', 'sslmode=require'), '-c', "SELECT 'done-tls'"]);
    expect(ok.stdout.trim(), ok.stderr).toBe('done-tls');
    await logged("statement: SELECT 'done-tls'");
    const rec = await sidecar.waitForRecord((x) => x.type === 'connection' && x.protocol === 'postgres' && x.dst.port === 5433 && x.verdict === 'allowed');
    expect(rec.ruleId).toBe('tls-port');
    const refused = await psql([conn().replace('sslmode=disable', 'sslmode=require'), '-c', "SELECT 'never-tls'"]);
    expect(refused.status).not.toBe(0);
    const denied = await sidecar.waitForRecord((x) => x.type === 'connection' && x.protocol === 'postgres' && x.dst.port === 5432 && x.verdict === 'denied' && (x.l7 as { encrypted?: boolean } | undefined)?.encrypted === true);
    expect(denied.ruleId).toBe('no-ddl');
    expect(serverLog).not.toContain('never-tls');
  });
});

describe('flow records', () => {
  it('every record so far validates against the flow-record schema (its protocol\'s l7 fields)', () => {
    expect(sidecar.records.length).toBeGreaterThan(0);
    assertValidFlowRecords(sidecar.records);
  });
});
