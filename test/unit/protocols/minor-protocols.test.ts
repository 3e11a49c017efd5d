// SSH banners, Redis commands, PostgreSQL startup: what flow records and tunnel checks need.
import { describe, expect, it } from 'vitest';
import { PostgresParser } from '../../../src/protocols/postgres/postgres-parser.js';
import { RedisParser } from '../../../src/protocols/redis/redis-parser.js';
import { SshParser } from '../../../src/protocols/ssh/ssh-parser.js';
import type { ProtocolEvent } from '../../../src/protocols/types.js';
import { loadFixtures, runStream } from './fixtures.js';

type Ev<T extends ProtocolEvent['type']> = Extract<ProtocolEvent, { type: T }>;
const of = <T extends ProtocolEvent['type']>(events: readonly ProtocolEvent[], type: T) => events.filter((e): e is Ev<T> => e.type === type);
const fixtures = loadFixtures();

describe('SSH', () => {
  it('reads both banners of a real OpenSSH client exchange, then goes opaque', () => {
    const f = fixtures.find((x) => x.file === 'ssh-openssh-client.json')!;
    const { events, errors } = runStream(new SshParser(), f.segments);
    expect(errors).toEqual([]);
    const banners = of(events, 'ssh.banner');
    expect(banners.map((b) => [b.side, b.protoVersion])).toEqual([['client', '2.0'], ['server', '2.0']]);
    expect(banners[0]!.softwareVersion).toMatch(/^OpenSSH_/);
    expect(of(events, 'opaque')).toHaveLength(2);
  });

  it('lets a server send lines before its banner, but not the client', () => {
    const p = new SshParser();
    const r = p.feed('server', Buffer.from('Welcome\r\nSSH-2.0-dropbear_2022.83\r\n'));
    expect(r.events[0]).toMatchObject({ type: 'ssh.banner', softwareVersion: 'dropbear_2022.83', start: 9, comments: null });
    expect(new SshParser().feed('client', Buffer.from('hello\r\n')).error?.code).toBe('ERR_MALFORMED');
  });
});

describe('Redis', () => {
  it('names each command, RESP arrays and inline, with its byte range', () => {
    const f = fixtures.find((x) => x.file === 'redis-resp-session.json')!;
    const client = f.segments[0]!.bytes;
    const { events } = runStream(new RedisParser(), f.segments);
    const commands = of(events, 'redis.command');
    expect(commands.map((c) => [c.command, c.argCount, c.inline])).toEqual([
      ['HELLO', 1, false], ['AUTH', 2, false], ['SET', 2, false], ['GET', 1, false], ['PING', 0, true], ['QUIT', 0, false],
    ]);
    expect(client.toString('latin1', commands[3]!.start, commands[3]!.end)).toBe('*2\r\n$3\r\nGET\r\n$7\r\ncart:42\r\n');
  });

  it('refuses a non-RESP element inside a command array', () => {
    expect(new RedisParser().feed('client', Buffer.from('*2\r\n$3\r\nGET\r\n:5\r\n')).error?.code).toBe('ERR_MALFORMED');
  });
});

describe('PostgreSQL', () => {
  it('reads psql\'s SSLRequest, the refusal, the startup user/database and the query', () => {
    const f = fixtures.find((x) => x.file === 'postgres-psql.json')!;
    const { events, errors } = runStream(new PostgresParser(), f.segments);
    expect(errors).toEqual([]);
    expect(of(events, 'postgres.startup').map((s) => s.kind)).toEqual(['ssl-request', 'startup']);
    expect(of(events, 'postgres.startup')[1]).toMatchObject({ user: 'orders_app', database: 'orders', applicationName: 'fixture-psql', protocolVersion: '3.0' });
    expect(of(events, 'postgres.encryption-response')).toMatchObject([{ accepted: false }]);
    expect(of(events, 'postgres.message').map((m) => [m.messageType, m.query])).toEqual([['Q', 'select 1'], ['X', null]]);
  });

  it('turns opaque when the server accepts SSL', () => {
    const p = new PostgresParser();
    p.feed('client', Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    const r = p.feed('server', Buffer.from('S'));
    expect(r.events.map((e) => e.type)).toEqual(['postgres.encryption-response', 'opaque', 'opaque']);
    expect(p.feed('client', Buffer.from([0x16, 3, 1, 0, 5])).error).toBeNull();
  });

  it('reads an ErrorResponse sent instead of an SSL answer as a message', () => {
    const p = new PostgresParser();
    p.feed('client', Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    const error = Buffer.concat([Buffer.from([0x45, 0, 0, 0, 12]), Buffer.from('SFATAL\0\0')]);
    const r = p.feed('server', error);
    expect(r.error).toBeNull();
    expect(r.events).toMatchObject([{ type: 'postgres.encryption-response', accepted: false }, { type: 'postgres.backend', messageType: 'E' }]);
    expect(p.end('server').error).toBeNull();
  });

  it('refuses an unknown protocol version', () => {
    expect(new PostgresParser().feed('client', Buffer.from([0, 0, 0, 9, 0, 9, 0, 0, 0])).error?.code).toBe('ERR_MALFORMED');
  });
});
