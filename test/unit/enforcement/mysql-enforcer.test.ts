// MySQL/MariaDB per-statement verdicts without sockets: the greeting first, the login's user and
// database, COM_QUERY pipelined with result sets, ERR 1142 with the right sequence id in order,
// for any chunking.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { filterFor, policyOf, RecordingSink, split } from './filter-fixture.js';
import { MysqlResponses } from '../../../src/protocols/mysql/mysql-responses.js';

const POLICY = policyOf([
  { id: 'no-ddl', action: 'deny', mysql: { statements: ['DDL'] } },
  { id: 'app', action: 'allow', mysql: { users: ['app'], databases: ['shop'], statements: ['SELECT', 'INSERT', 'USE', 'SET'] } },
]);

const newFilter = (sink: RecordingSink, policy = POLICY) => filterFor(sink, policy, 3306);

const packet = (seq: number, payload: Buffer | number[] | string): Buffer => {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  const h = Buffer.alloc(4);
  h.writeUIntLE(p.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, p]);
};
const CAPS = (1 << 0) | (1 << 3) | (1 << 9) | (1 << 15) | (1 << 16) | (1 << 19);
function greeting(): Buffer {
  const p = Buffer.concat([
    Buffer.from([10]), Buffer.from('10.11.6-MariaDB\0'), Buffer.from([1, 0, 0, 0]), Buffer.alloc(8, 0x41), Buffer.from([0]),
    Buffer.from([CAPS & 0xff, (CAPS >> 8) & 0xff]), Buffer.from([33]), Buffer.from([2, 0]), Buffer.from([(CAPS >> 16) & 0xff, (CAPS >> 24) & 0xff]),
    Buffer.from([21]), Buffer.alloc(10), Buffer.alloc(12, 0x42), Buffer.from([0]), Buffer.from('mysql_native_password\0'),
  ]);
  return packet(0, p);
}
function login(user: string, db: string): Buffer {
  const caps = Buffer.alloc(4);
  caps.writeUInt32LE(CAPS >>> 0);
  return packet(1, Buffer.concat([caps, Buffer.from([0, 0, 0, 1]), Buffer.from([33]), Buffer.alloc(23), Buffer.from(`${user}\0`), Buffer.from([0]), Buffer.from(`${db}\0`), Buffer.from('mysql_native_password\0')]));
}
const OK = (seq: number, status = 2) => packet(seq, [0x00, 0, 0, status & 0xff, status >> 8, 0, 0]);
const EOF = (seq: number, status = 2) => packet(seq, [0xfe, 0, 0, status & 0xff, status >> 8]);
const query = (sql: string) => packet(0, Buffer.concat([Buffer.from([0x03]), Buffer.from(sql)]));
/** A one-column, one-row text result set (not CLIENT_DEPRECATE_EOF). */
const resultSet = (value: string) => Buffer.concat([packet(1, [1]), packet(2, Buffer.concat([Buffer.from([3]), Buffer.from('def'), Buffer.alloc(8, 0), Buffer.from([0x0c, 0x21, 0, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0])])), EOF(3), packet(4, Buffer.concat([Buffer.from([value.length]), Buffer.from(value)])), EOF(5)]);

function kinds(bytes: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  while (i + 4 <= bytes.length) {
    const len = bytes.readUIntLE(i, 3);
    const seq = bytes[i + 3]!;
    const first = bytes[i + 4]!;
    out.push(first === 0xff ? `ERR${bytes.readUInt16LE(i + 5)}@${seq}` : first === 0x00 ? `OK@${seq}` : first === 0xfe && len < 9 ? `EOF@${seq}` : `P@${seq}`);
    i += 4 + len;
  }
  return out;
}

describe('MySQL per-statement enforcement', () => {
  it('pipelined COM_QUERY: the denied never reach the server; ERR 1142 with sequence id 1, in order; for every chunking', () => {
    const client = Buffer.concat([login('app', 'shop'), query('SELECT 1'), query('DROP TABLE t'), query('SELECT 2; DELETE FROM t'), query('INSERT INTO t VALUES (1)')]);
    const server = Buffer.concat([OK(2), resultSet('1'), OK(1)]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 10 }), (cuts, serverCuts) => {
        const sink = new RecordingSink();
        const filter = newFilter(sink);
        filter.serverData(greeting());
        for (const chunk of split(client, cuts)) filter.clientData(chunk);
        expect(Buffer.concat(sink.server)).toEqual(Buffer.concat([login('app', 'shop'), query('SELECT 1'), query('INSERT INTO t VALUES (1)')]));
        for (const chunk of split(server, serverCuts)) filter.serverData(chunk);
        expect(kinds(Buffer.concat(sink.client))).toEqual(['P@0', 'OK@2', 'P@1', 'P@2', 'EOF@3', 'P@4', 'EOF@5', 'ERR1142@1', 'ERR1142@1', 'OK@1']);
        expect(sink.closed).toBeNull();
        expect(sink.outcomes.filter((o) => o.decision.action === 'deny').map((o) => o.decision.ruleId)).toEqual(['no-ddl', 'default']);
      }),
      { numRuns: 200 },
    );
  });

  it('a denied user gets ERR 1045 and the connection ends; USE of another database is decided', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.serverData(greeting());
    filter.clientData(login('root', 'shop'));
    expect(kinds(Buffer.concat(sink.client)).slice(1)).toEqual(['ERR1045@2']);
    expect(sink.closed).toBe('fin:denied');
    const s2 = new RecordingSink();
    const f2 = newFilter(s2);
    f2.serverData(greeting());
    f2.clientData(login('app', 'shop'));
    f2.serverData(OK(2));
    f2.clientData(query('USE mysql'));
    expect(kinds(Buffer.concat(s2.client)).slice(1)).toEqual(['OK@2', 'ERR1044@1']);
    expect(Buffer.concat(s2.server)).toEqual(login('app', 'shop'));
  });

  it('response ends: prepare with params and columns, multi-results, deprecate-EOF OK terminators', () => {
    const r = new MysqlResponses();
    r.configure(0, 0);
    r.expect(0x16); // COM_STMT_PREPARE: 1 column, 1 param
    expect(r.onPacket(Buffer.from([0x00, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]), 12)).toBe(false);
    expect(r.onPacket(Buffer.from([3, 0x64, 0x65, 0x66]), 30)).toBe(false); // param def
    expect(r.onPacket(Buffer.from([0xfe, 0, 0, 2, 0]), 5)).toBe(false); // EOF
    expect(r.onPacket(Buffer.from([3, 0x64, 0x65, 0x66]), 30)).toBe(false); // column def
    expect(r.onPacket(Buffer.from([0xfe, 0, 0, 2, 0]), 5)).toBe(true);
    r.expect(0x03); // two results (SERVER_MORE_RESULTS_EXISTS on the first OK)
    expect(r.onPacket(Buffer.from([0x00, 0, 0, 0x0a, 0, 0, 0]), 7)).toBe(false);
    expect(r.onPacket(Buffer.from([0x00, 0, 0, 0x02, 0, 0, 0]), 7)).toBe(true);
    const d = new MysqlResponses();
    d.configure(1 << 24, 0);
    d.expect(0x03);
    expect(d.onPacket(Buffer.from([1]), 1)).toBe(false);
    expect(d.onPacket(Buffer.from([3, 0x64]), 30)).toBe(false);
    expect(d.onPacket(Buffer.from([1, 0x31]), 2)).toBe(false); // row
    expect(d.onPacket(Buffer.from([0xfe, 0, 0, 2, 0, 0, 0]), 7)).toBe(true);
  });
});
