// MySQL/MariaDB beyond plain COM_QUERY (issue 17), against a real mariadbd 10.11 with TLS on:
// * binary prepared statements (COM_STMT_PREPARE / COM_STMT_EXECUTE) from a real driver, the npm
//   `mysql2` package's execute(): each statement is decided at its prepare; a denied one gets
//   ERR 1142 and never reaches the server, the connection goes on;
// * a session that goes TLS (mariadb --ssl): opaque from the SSLRequest on, so its user, database
//   and statements are unknown — a deny rule naming statements refuses it, an allow rule naming
//   them does not match it (fail closed), an allow rule on the protocol alone lets it through.
// Every block is proved by the server's own general query log (every command it receives, with
// "Prepare"/"Execute" lines and the connection's transport), ordered by a later allowed marker.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, Topology } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'my', subnet: 180 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const dir = join(topo.dir, 'mariadb');
const generalLog = join(dir, 'general.log');
const root = fileURLToPath(new URL('../../', import.meta.url));

const config = (rules: string): string => `mode: protect
defaultAction: deny
tunnels: off
ports:
  "3306": mysql
rules:
${rules}`;

/** A deny naming statements first, then what the app may do. */
const STATEMENT_RULES = config(`  - id: no-ddl
    action: deny
    mysql: { statements: [DDL] }
  - id: app
    action: allow
    mysql: { users: [app], databases: [shop], statements: [SELECT, INSERT] }
`);
/** Only an allow naming statements. */
const ALLOW_ONLY_RULES = config(`  - id: app-select
    action: allow
    mysql: { statements: [SELECT] }
`);
/** The protocol alone (no L7 block). */
const PROTOCOL_RULES = config(`  - id: any-mysql
    action: allow
    protocol: mysql
`);

const log = (): string => (existsSync(generalLog) ? readFileSync(generalLog, 'utf8') : '');
/** The app's TLS sessions the server accepted ("Connect app@10.77.180.1 on shop using SSL/TLS"; plaintext ones say TCP/IP). */
const tlsSessions = (): number => log().match(/Connect\s+app@\S+ on \S* using SSL\/TLS/g)?.length ?? 0;
async function logged(marker: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (log().includes(marker)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`mariadbd never logged ${marker}; log tail: ${log().slice(-1500)}`);
}

/** The mariadb client, plaintext (--skip-ssl) or TLS (--ssl; the test's self-signed certificate is not verified). */
const client = (tls: boolean, sql: string) => {
  const file = topo.writeFile(`script-${Math.random().toString(36).slice(2)}.sql`, sql);
  const ssl = tls ? '--ssl --skip-ssl-verify-server-cert' : '--skip-ssl';
  return topo.execAsync(topo.podNs, 'sh', ['-c', `mariadb --no-defaults --connect-timeout=5 ${ssl} --force -N -h ${peer} -u app shop < ${file}`], { uid: APP_UID });
};

/** mysql2's execute() (binary protocol: COM_STMT_PREPARE, then COM_STMT_EXECUTE) for each statement, on one connection. */
const DRIVER = `import { createRequire } from 'node:module';
const [root, host, steps] = process.argv.slice(2);
const mysql = createRequire(root + 'package.json')('mysql2/promise');
const conn = await mysql.createConnection({ host, user: 'app', database: 'shop' });
const out = [];
for (const [sql, params] of JSON.parse(steps)) {
  try {
    const [rows] = await conn.execute(sql, params);
    out.push({ rows });
  } catch (e) {
    out.push({ errno: e.errno, message: e.message });
  }
}
await conn.end();
process.stdout.write(JSON.stringify(out));
`;
async function execute(steps: Array<[string, unknown[]]>): Promise<Array<{ rows?: unknown; errno?: number; message?: string }>> {
  const script = topo.writeFile('driver.mjs', DRIVER);
  const r = await topo.execAsync(topo.podNs, NODE, [script, root, peer, JSON.stringify(steps)], { uid: APP_UID });
  if (r.status !== 0) throw new Error(`mysql2 driver: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<{ rows?: unknown; errno?: number; message?: string }>;
}

const reloads = (): number => (sidecar.stderr.match(/rules reloaded/g) ?? []).length;
async function reload(configText: string): Promise<void> {
  const before = reloads();
  topo.writeFile('sidecar.yaml', configText);
  const deadline = Date.now() + 10_000;
  while (reloads() === before) {
    if (Date.now() > deadline) throw new Error(`the rules were not reloaded; stderr tail: ${sidecar.stderr.slice(-1000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const rootQuery = (sql: string): string => topo.exec(topo.peerNs, 'mariadb', ['--no-defaults', `--socket=${join(dir, 'sock')}`, '-u', 'root', '-N', '-e', sql]).stdout.trim();

beforeAll(async () => {
  topo.create();
  mkdirSync(dir);
  const cert = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=mariadb', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { encoding: 'utf8' });
  if (cert.status !== 0) throw new Error(`openssl: ${cert.stderr}`);
  const uid = Number(spawnSync('id', ['-u', 'mysql'], { encoding: 'utf8' }).stdout.trim());
  spawnSync('chown', ['-R', String(uid), dir]);
  const install = spawnSync('mariadb-install-db', ['--no-defaults', '--user=mysql', `--datadir=${join(dir, 'data')}`, '--auth-root-authentication-method=normal', '--skip-test-db'], { encoding: 'utf8' });
  if (install.status !== 0) throw new Error(`mariadb-install-db: ${install.stderr}`);
  const server = topo.start(topo.peerNs, 'mariadbd', ['--no-defaults', `--datadir=${join(dir, 'data')}`, `--socket=${join(dir, 'sock')}`, '--port=3306', `--bind-address=${peer}`,
    '--skip-grant-tables', '--general-log=1', `--general-log-file=${generalLog}`, `--pid-file=${join(dir, 'pid')}`,
    `--ssl-cert=${join(dir, 'cert.pem')}`, `--ssl-key=${join(dir, 'key.pem')}`], { uid });
  server.stdout?.resume();
  let err = '';
  server.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const deadline = Date.now() + 30_000;
  while (!err.includes('ready for connections')) {
    if (Date.now() > deadline) throw new Error(`mariadbd did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const setup = topo.exec(topo.peerNs, 'mariadb', ['--no-defaults', `--socket=${join(dir, 'sock')}`, '-u', 'root', '-e', 'CREATE DATABASE shop; CREATE TABLE shop.items (id int); INSERT INTO shop.items VALUES (1), (2);']);
  if (setup.status !== 0) throw new Error(`setup: ${setup.stderr}`);
  // TLS is on: the server says so (have_ssl), so a refused TLS session below is the sidecar's doing.
  expect(rootQuery("SELECT @@have_ssl")).toBe('YES');
  sidecar.init();
  await sidecar.start(STATEMENT_RULES);
}, 90_000);

afterAll(async () => {
  if (sidecar.records.length > 0) await sidecar.stopAndCheckRecords();
  await topo.destroy();
});

describe('MySQL prepared statements (mysql2 execute(): COM_STMT_PREPARE / COM_STMT_EXECUTE)', () => {
  it('an allowed statement is prepared and executed; a denied one never reaches the server; the connection goes on', async () => {
    const out = await execute([
      ['SELECT id FROM items WHERE id = ?', [2]],
      ['DELETE FROM items WHERE id = ?', [1]],
      ['DROP TABLE items', []],
      ['INSERT INTO items VALUES (?)', [3]],
      ['SELECT ? AS marker', ['prepared-done']],
    ]);
    expect(out[0]).toEqual({ rows: [{ id: 2 }] });
    expect(out[1]).toMatchObject({ errno: 1142, message: expect.stringMatching(/DELETE denied by sidewall \(rule default\)/) });
    expect(out[2]).toMatchObject({ errno: 1142, message: expect.stringMatching(/DROP denied by sidewall \(rule no-ddl\)/) });
    expect(out[3]).toMatchObject({ rows: { affectedRows: 1 } });
    expect(out[4]).toEqual({ rows: [{ marker: 'prepared-done' }] });
    // The server's log: the allowed ones prepared and executed (binary protocol), the denied never.
    await logged('prepared-done');
    expect(log()).toMatch(/Prepare\s+SELECT id FROM items WHERE id = \?/);
    expect(log()).toMatch(/Execute\s+SELECT id FROM items WHERE id = 2/);
    expect(log()).toMatch(/Execute\s+INSERT INTO items VALUES \(3\)/);
    expect(log()).not.toContain('DELETE FROM items');
    expect(log()).not.toContain('DROP TABLE');
    expect(rootQuery('SELECT count(*) FROM shop.items')).toBe('3');
    const denied = await sidecar.waitForRecord((r) => r.type === 'request' && r.protocol === 'mysql' && (r.l7 as { statement?: string }).statement === 'DELETE');
    expect([denied.verdict, denied.ruleId, (denied.l7 as { command?: string }).command]).toEqual(['denied', 'default', 'STMT_PREPARE']);
  });
});

describe('MySQL over TLS (mariadb --ssl): the session is opaque', () => {
  it('a deny rule naming statements refuses it (fail closed); the same client in plaintext is decided per statement', async () => {
    expect(tlsSessions()).toBe(0);
    const tls = await client(true, "SELECT 'tls-under-deny';\n");
    expect(tls.status).not.toBe(0);
    const rec = await sidecar.waitForRecord((r) => r.type === 'connection' && r.protocol === 'mysql' && r.verdict === 'denied');
    expect([rec.ruleId, rec.l7]).toEqual(['no-ddl', { encrypted: true }]);
    // Ordered by a later plaintext session the server logs: the TLS one never got there.
    const plain = await client(false, "SELECT 'plain-under-deny';\n");
    expect(plain.stdout.trim()).toBe('plain-under-deny');
    await logged("SELECT 'plain-under-deny'");
    expect(log()).not.toContain('tls-under-deny');
    expect(tlsSessions()).toBe(0);
  });

  it('an allow rule naming statements does not match it: the default denies; plaintext SELECT is allowed', async () => {
    await reload(ALLOW_ONLY_RULES);
    const tls = await client(true, "SELECT 'tls-under-allow';\n");
    expect(tls.status).not.toBe(0);
    const rec = await sidecar.waitForRecord((r) => r.type === 'connection' && r.protocol === 'mysql' && r.verdict === 'denied' && r.ruleId === 'default');
    expect(rec.l7).toEqual({ encrypted: true });
    const plain = await client(false, "SELECT 'plain-under-allow';\n");
    expect(plain.stdout.trim()).toBe('plain-under-allow');
    await logged("SELECT 'plain-under-allow'");
    expect(log()).not.toContain('tls-under-allow');
    expect(tlsSessions()).toBe(0);
  });

  it('an allow rule on the protocol alone lets it through, opaque (the server sees TLS; no statement is recorded)', async () => {
    await reload(PROTOCOL_RULES);
    const tls = await client(true, "SELECT 'tls-allowed';\n");
    expect(tls.stderr).toBe('');
    expect(tls.stdout.trim()).toBe('tls-allowed');
    await logged("SELECT 'tls-allowed'");
    expect(tlsSessions()).toBe(1);
    const rec = await sidecar.waitForRecord((r) => r.type === 'connection' && r.protocol === 'mysql' && r.ruleId === 'any-mysql' && (r.l7 as { encrypted?: boolean } | undefined)?.encrypted === true);
    expect(rec.verdict).toBe('allowed');
    expect(sidecar.records.some((r) => r.type === 'request' && r.flowId === rec.flowId)).toBe(false);
  });
});

describe('flow records', () => {
  it('every record so far validates against the flow-record schema (mysql l7: user, command, statements, encrypted...)', () => {
    expect(sidecar.records.some((r) => r.type === 'request' && r.protocol === 'mysql')).toBe(true);
    assertValidFlowRecords(sidecar.records);
  });
});
