// MySQL/MariaDB users, databases and statements against a real mariadbd (issue 17): the server
// speaks first and is heard at once; a denied statement never reaches it — proved by its own
// general query log (every command it receives) — and the client gets ERR 1142 on a session that
// stays usable (the mariadb client with --force goes on to the next statement).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, Topology } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'dbm', subnet: 134 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const dir = join(topo.dir, 'mariadb');
const generalLog = join(dir, 'general.log');

const CONFIG = `mode: protect
defaultAction: deny
tunnels: off
ports:
  "3306": mysql
rules:
  - id: no-ddl
    action: deny
    mysql: { statements: [DDL] }
  - id: no-root
    action: deny
    mysql: { users: [root] }
  - id: app
    action: allow
    mysql: { users: [app], databases: [shop], statements: [SELECT, INSERT, SET, SHOW] }
`;

const log = (): string => (existsSync(generalLog) ? readFileSync(generalLog, 'utf8') : '');
async function logged(marker: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (log().includes(marker)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`mariadbd never logged ${marker}; log tail: ${log().slice(-1500)}`);
}

const client = (args: string[], script: string) => {
  const file = topo.writeFile(`script-${Math.random().toString(36).slice(2)}.sql`, script);
  return topo.execAsync(topo.podNs, 'sh', ['-c', `mariadb --no-defaults --connect-timeout=5 --skip-ssl --force -h ${peer} ${args.join(' ')} < ${file}`], { uid: APP_UID });
};

beforeAll(async () => {
  topo.create();
  mkdirSync(dir);
  const uid = Number(spawnSync('id', ['-u', 'mysql'], { encoding: 'utf8' }).stdout.trim());
  spawnSync('chown', ['-R', String(uid), dir]);
  const install = spawnSync('mariadb-install-db', ['--no-defaults', '--user=mysql', `--datadir=${join(dir, 'data')}`, '--auth-root-authentication-method=normal', '--skip-test-db'], { encoding: 'utf8' });
  if (install.status !== 0) throw new Error(`mariadb-install-db: ${install.stderr}`);
  const server = topo.start(topo.peerNs, 'mariadbd', ['--no-defaults', `--datadir=${join(dir, 'data')}`, `--socket=${join(dir, 'sock')}`, '--port=3306', `--bind-address=${peer}`,
    '--skip-grant-tables', '--general-log=1', `--general-log-file=${generalLog}`, `--pid-file=${join(dir, 'pid')}`, '--skip-ssl'], { uid });
  server.stdout?.resume();
  let err = '';
  server.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const deadline = Date.now() + 30_000;
  while (!err.includes('ready for connections')) {
    if (Date.now() > deadline) throw new Error(`mariadbd did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const setup = topo.exec(topo.peerNs, 'mariadb', ['--no-defaults', `--socket=${join(dir, 'sock')}`, '-u', 'root', '-e', 'CREATE DATABASE shop; CREATE TABLE shop.items (id int); INSERT INTO shop.items VALUES (1);']);
  if (setup.status !== 0) throw new Error(`setup: ${setup.stderr}`);
  sidecar.init();
  await sidecar.start(CONFIG);
}, 90_000);

afterAll(async () => {
  if (sidecar.records.length > 0) await sidecar.stopAndCheckRecords();
  await topo.destroy();
});

const tableExists = () => topo.exec(topo.peerNs, 'mariadb', ['--no-defaults', `--socket=${join(dir, 'sock')}`, '-u', 'root', '-N', '-e', "SELECT count(*) FROM information_schema.tables WHERE table_name = 'items'"]).stdout.trim();

describe('MySQL statements (mariadbd 10.11, mariadb client)', () => {
  it('one session: allowed, denied, allowed — the denied never reach the server, the session goes on', async () => {
    const r = await client(['-u', 'app', '-N', 'shop'], "SELECT count(*) FROM items;\nDROP TABLE items;\nINSERT INTO items VALUES (2);\nDELETE FROM items;\nSELECT 'done-mysql';\n");
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['1', 'done-mysql']);
    expect(r.stderr).toMatch(/ERROR 1142 \(42000\).*DROP denied by sidewall \(rule no-ddl\)/);
    expect(r.stderr).toMatch(/ERROR 1142 \(42000\).*DELETE denied by sidewall \(rule default\)/);
    await logged("SELECT 'done-mysql'");
    expect(log()).toContain('INSERT INTO items VALUES (2)');
    expect(log()).not.toContain('DROP TABLE items');
    expect(log()).not.toContain('DELETE FROM items');
    expect(tableExists()).toBe('1');
    const rec = await sidecar.waitForRecord((x) => x.type === 'request' && x.protocol === 'mysql' && (x.l7 as { statement?: string }).statement === 'DROP');
    expect([rec.verdict, rec.ruleId, (rec.l7 as { user?: string }).user]).toEqual(['denied', 'no-ddl', 'app']);
  });

  it('several statements in one COM_QUERY (CLIENT_MULTI_STATEMENTS): one denied refuses the query', async () => {
    const r = await client(['-u', 'app', '-N', 'shop'], "DELIMITER //\nSELECT 21; DROP TABLE items//\nDELIMITER ;\nSELECT 'done-multi';\n");
    expect(r.stderr).toContain('rule no-ddl');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['done-multi']);
    await logged("SELECT 'done-multi'");
    expect(log()).not.toContain('SELECT 21');
    expect(tableExists()).toBe('1');
  });

  it('a denied user gets ERR 1045; a denied database change (USE) gets ERR 1044', async () => {
    const root = await client(['-u', 'root', 'shop'], 'SELECT 1;\n');
    expect(root.stderr).toMatch(/ERROR 1045 .*rule no-root/);
    expect(log()).not.toMatch(/Connect\s+root@10\.77\.134\.1/);
    const use = await client(['-u', 'app', '-N', 'shop'], "USE mysql;\nSELECT 'done-use';\n");
    expect(use.stderr).toMatch(/ERROR 1044 .*rule default/);
    expect(use.stdout.trim()).toBe('done-use');
    await logged("SELECT 'done-use'");
    expect(log()).not.toMatch(/Init DB\s+mysql/);
  });
});

describe('flow records', () => {
  it('every record so far validates against the flow-record schema (its protocol\'s l7 fields)', () => {
    expect(sidecar.records.length).toBeGreaterThan(0);
    assertValidFlowRecords(sidecar.records);
  });
});
