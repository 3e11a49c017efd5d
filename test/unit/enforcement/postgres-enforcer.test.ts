// PostgreSQL statements and per-query verdicts without sockets: the SQL lexer's statement split,
// and what reaches the server / what the client reads, for any chunking.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { filterFor, policyOf, RecordingSink, split } from './filter-fixture.js';
import { splitStatements, statementVerbs } from '../../../src/protocols/sql/sql-statements.js';

const POLICY = policyOf([
  { id: 'no-ddl', action: 'deny', postgres: { statements: ['DDL', 'COPY'] } },
  { id: 'no-admin-user', action: 'deny', postgres: { users: ['admin'] } },
  { id: 'app', action: 'allow', postgres: { users: ['app'], databases: ['shop'], statements: ['SELECT', 'INSERT', 'UPDATE', 'BEGIN', 'COMMIT'] } },
]);

const newFilter = (sink: RecordingSink, policy = POLICY) => filterFor(sink, policy, 5432);

const msg = (type: string, body: Buffer | string): Buffer => {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(4 + b.length, 1);
  return Buffer.concat([head, b]);
};
const startup = (user: string, database: string): Buffer => {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length, 0);
  head.writeUInt32BE(0x30000, 4);
  return Buffer.concat([head, body]);
};
const query = (sql: string): Buffer => msg('Q', `${sql}\0`);
const ready = (status = 'I'): Buffer => msg('Z', status);
const complete = (tag: string): Buffer => msg('C', `${tag}\0`);
const AUTH_OK = Buffer.concat([msg('R', Buffer.from([0, 0, 0, 0])), ready()]);

function errorCode(bytes: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < bytes.length) {
    const type = String.fromCharCode(bytes[i]!);
    const len = bytes.readUInt32BE(i + 1);
    if (type === 'E') out.push(`E:${/C([0-9A-Z]{5})\0/.exec(bytes.toString('latin1', i + 5, i + 1 + len))?.[1]}`);
    else out.push(type === 'Z' ? `Z:${String.fromCharCode(bytes[i + 5]!)}` : type);
    i += 1 + len;
  }
  return out;
}

describe('SQL statements (PostgreSQL and MySQL lexing)', () => {
  const verbs = (sql: string, dialect: 'postgres' | 'mysql' = 'postgres') => statementVerbs(splitStatements(sql, dialect));
  it('splits on top-level semicolons, not inside literals, identifiers, comments or dollar quotes', () => {
    expect(verbs('SELECT 1; DROP TABLE x')).toEqual(['SELECT', 'DROP']);
    expect(verbs("SELECT ';DROP TABLE x'")).toEqual(['SELECT']);
    expect(verbs('SELECT "a;DROP" FROM t')).toEqual(['SELECT']);
    expect(verbs('/* ; DROP */ SELECT 1 -- ; DELETE\n')).toEqual(['SELECT']);
    expect(verbs('/* nested /* ; */ DROP TABLE t; */ SELECT 1')).toEqual(['SELECT']);
    expect(verbs('SELECT $q$ ; DROP TABLE t; $q$, $1')).toEqual(['SELECT']);
    expect(verbs('   (SELECT 1) UNION (SELECT 2)')).toEqual(['SELECT']);
  });
  it('finds the verbs a statement carries (WITH, EXPLAIN ANALYZE, PREPARE, CREATE ... AS)', () => {
    expect(verbs('WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d')).toEqual(['WITH', 'DELETE', 'SELECT']);
    expect(verbs('EXPLAIN ANALYZE DELETE FROM t')).toEqual(['EXPLAIN', 'DELETE']);
    expect(verbs('EXPLAIN (ANALYZE, FORMAT JSON) UPDATE t SET a = 1')).toEqual(['EXPLAIN', 'UPDATE']);
    expect(verbs('PREPARE p AS DELETE FROM t')).toEqual(['PREPARE', 'DELETE']);
  });
  it('reads backslashes both ways where a session setting decides (standard_conforming_strings)', () => {
    // With standard_conforming_strings off the server reads 'a\'' as one literal, and DROP runs.
    expect(verbs("SELECT 'a\\'' ; DROP TABLE x; --'")).toContain('DROP');
    expect(verbs("SELECT E'a\\'; DROP TABLE x'")).toEqual(['SELECT']);
  });
  it('MySQL: # and -- comments, executable /*! */ comments are code, backslash escapes', () => {
    expect(verbs('SELECT 1 # ; DROP TABLE x\n', 'mysql')).toEqual(['SELECT']);
    expect(verbs('SELECT 1 --; DROP TABLE x', 'mysql')).toEqual(['SELECT', 'DROP']);
    expect(verbs('SELECT 1 /*!50000 ; DROP TABLE x */', 'mysql')).toEqual(['SELECT', 'DROP']);
    expect(verbs("SELECT 'a\\'; DROP TABLE x; -- '", 'mysql')).toContain('DROP'); // NO_BACKSLASH_ESCAPES reading
    expect(verbs('SELECT `;DROP` FROM t', 'mysql')).toEqual(['SELECT']);
  });
  it('records tables', () => {
    expect(splitStatements('SELECT * FROM public.users u JOIN orders o ON true', 'postgres')[0]?.tables).toEqual(['public.users', 'orders']);
  });
});

describe('PostgreSQL per-query enforcement', () => {
  it('a denied query among pipelined ones never reaches the server; its ErrorResponse 42501 comes in order; for every chunking', () => {
    const client = Buffer.concat([startup('app', 'shop'), query('SELECT 1'), query('DROP TABLE t'), query('SELECT 1; DELETE FROM t'), query('INSERT INTO t VALUES (1)')]);
    const server = Buffer.concat([AUTH_OK, complete('SELECT 1'), ready(), complete('INSERT 0 1'), ready()]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 8 }), (cuts, serverCuts) => {
        const sink = new RecordingSink();
        const filter = newFilter(sink);
        for (const chunk of split(client, cuts)) filter.clientData(chunk);
        expect(Buffer.concat(sink.server)).toEqual(Buffer.concat([startup('app', 'shop'), query('SELECT 1'), query('INSERT INTO t VALUES (1)')]));
        for (const chunk of split(server, serverCuts)) filter.serverData(chunk);
        expect(errorCode(Buffer.concat(sink.client))).toEqual(['R', 'Z:I', 'C', 'Z:I', 'E:42501', 'Z:I', 'E:42501', 'Z:I', 'C', 'Z:I']);
        expect(sink.closed).toBeNull();
        const denied = sink.outcomes.filter((o) => o.decision.action === 'deny').map((o) => o.decision.ruleId);
        expect(denied).toEqual(['no-ddl', 'default']);
      }),
      { numRuns: 200 },
    );
  });

  it('extended protocol: a denied Parse drops everything up to Sync; the error goes before the Sync\'s ReadyForQuery', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(startup('app', 'shop'));
    filter.serverData(AUTH_OK);
    const parse = (sql: string) => msg('P', `\0${sql}\0\0\0`);
    const bind = msg('B', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]));
    const exec = msg('E', Buffer.from([0, 0, 0, 0, 0]));
    const sync = msg('S', '');
    filter.clientData(Buffer.concat([parse('SELECT 1'), bind, exec, parse('TRUNCATE t'), bind, exec, sync]));
    expect(Buffer.concat(sink.server).subarray(startup('app', 'shop').length)).toEqual(Buffer.concat([parse('SELECT 1'), bind, exec, sync]));
    filter.serverData(Buffer.concat([msg('1', ''), msg('2', ''), msg('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x31])), complete('SELECT 1'), ready()]));
    expect(errorCode(Buffer.concat(sink.client)).slice(2)).toEqual(['1', '2', 'D', 'C', 'E:42501', 'Z:I']);
    // The session goes on.
    filter.clientData(query('SELECT 2'));
    expect(Buffer.concat(sink.server).subarray(-query('SELECT 2').length)).toEqual(query('SELECT 2'));
  });

  it('a denied user never starts a session: FATAL 42501 and the connection ends', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(startup('admin', 'shop'));
    expect(sink.server).toEqual([]);
    expect(errorCode(Buffer.concat(sink.client))).toEqual(['E:42501']);
    expect(sink.closed).toBe('fin:denied');
    expect(filter.decision?.ruleId).toBe('no-admin-user');
  });

  it('copy data reaches the server only while it takes it; a TLS session is decided without user', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(startup('app', 'shop'));
    filter.serverData(AUTH_OK);
    filter.clientData(msg('d', 'smuggled'));
    expect(Buffer.concat(sink.server)).toEqual(startup('app', 'shop'));
    const tls = new RecordingSink();
    const f2 = newFilter(tls, policyOf([{ id: 'pg-any', action: 'allow', protocol: 'postgres' }, { id: 'no-admin', action: 'deny', postgres: { users: ['admin'] } }]));
    const ssl = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    f2.clientData(ssl);
    f2.serverData(Buffer.from('S'));
    // A deny rule naming users might apply to the encrypted session: allowed only by an earlier rule.
    expect(f2.decision?.ruleId).toBe('pg-any');
    f2.clientData(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]));
    expect(Buffer.concat(tls.server).subarray(8)).toEqual(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]));
    const f3sink = new RecordingSink();
    const f3 = newFilter(f3sink, policyOf([{ id: 'no-admin', action: 'deny', postgres: { users: ['admin'] } }, { id: 'pg-any', action: 'allow', protocol: 'postgres' }]));
    f3.clientData(ssl);
    f3.serverData(Buffer.from('S'));
    expect(f3.decision?.ruleId).toBe('no-admin');
    expect(f3sink.closed).toBe('reset:denied');
  });
});
