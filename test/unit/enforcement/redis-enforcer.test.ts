// Redis per-command verdicts without sockets: what reaches the server, what the client reads, in
// which order, for any way the streams are cut into chunks.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { filterFor, policyOf, RecordingSink, split } from './filter-fixture.js';
import { RedisParser } from '../../../src/protocols/redis/redis-parser.js';
import { loadFixtures, runStream } from '../protocols/fixtures.js';

export const REDIS_RULES = [
  { id: 'no-admin', action: 'deny', redis: { commands: ['FLUSHALL', 'FLUSHDB', 'CONFIG', 'EVAL', 'EVALSHA', 'KEYS', 'DEBUG', 'MODULE'] } },
  { id: 'sessions', action: 'allow', redis: { commands: ['GET', 'SET', 'DEL', 'MGET', 'MSET'], keys: ['session:*'] } },
  { id: 'plumbing', action: 'allow', redis: { commands: ['PING', 'HELLO', 'AUTH', 'MULTI', 'EXEC', 'DISCARD', 'SELECT', 'QUIT', 'SUBSCRIBE', 'PUBLISH'] } },
];
const POLICY = policyOf(REDIS_RULES);

const newFilter = (sink: RecordingSink, policy = POLICY) => filterFor(sink, policy, 6379);

const cmd = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

describe('Redis per-command enforcement', () => {
  it('drops denied commands and answers them in order among the pipelined replies, for every chunking', () => {
    const commands = [
      cmd('SET', 'session:1', 'v'.repeat(300)), // allowed; its value is long
      cmd('FLUSHALL'), // denied by no-admin
      cmd('GET', 'session:1'), // allowed
      cmd('GET', 'secret:1'), // denied by default (key outside session:*)
      cmd('MSET', 'session:2', 'a', 'secret:2', 'b'), // denied: one key outside
      cmd('CONFIG', 'SET', 'dir', '/tmp'), // denied
      cmd('PING'), // allowed
    ];
    const allowed = [0, 2, 6];
    const replies = ['+OK\r\n', '$300\r\n' + 'v'.repeat(300) + '\r\n', '+PONG\r\n'];
    const client = Buffer.from(commands.join(''));
    const server = Buffer.from(replies.join(''));
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 6 }), (cuts, serverCuts) => {
        const sink = new RecordingSink();
        const filter = newFilter(sink);
        for (const chunk of split(client, cuts)) filter.clientData(chunk);
        expect(Buffer.concat(sink.server).toString()).toBe(allowed.map((i) => commands[i]).join(''));
        expect(sink.client).toEqual([]); // the first denial waits for the SET's reply
        for (const chunk of split(server, serverCuts)) filter.serverData(chunk);
        expect(Buffer.concat(sink.client).toString()).toBe([
          replies[0],
          '-ERR denied by sidewall (rule no-admin)\r\n',
          replies[1],
          '-ERR denied by sidewall (rule default)\r\n',
          '-ERR denied by sidewall (rule default)\r\n',
          '-ERR denied by sidewall (rule no-admin)\r\n',
          replies[2],
        ].join(''));
        expect(sink.closed).toBeNull();
        expect(sink.outcomes.map((o) => [o.l7.command, o.decision.ruleId, o.decision.action])).toEqual(expect.arrayContaining([
          ['FLUSHALL', 'no-admin', 'deny'], ['SET', 'sessions', 'allow'], ['MSET', 'default', 'deny'], ['PING', 'plumbing', 'allow'],
        ]));
        expect(sink.outcomes).toHaveLength(7);
      }),
      { numRuns: 300 },
    );
  });

  it('answers a denial at once when nothing is outstanding, and the connection goes on', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(Buffer.from(cmd('GET', 'session:9')));
    filter.serverData(Buffer.from('$-1\r\n'));
    filter.clientData(Buffer.from(cmd('KEYS', '*')));
    expect(Buffer.concat(sink.client).toString()).toBe('$-1\r\n-ERR denied by sidewall (rule no-admin)\r\n');
    filter.clientData(Buffer.from(cmd('GET', 'session:9')));
    expect(Buffer.concat(sink.server).toString()).toBe(cmd('GET', 'session:9').repeat(2));
  });

  it('a denied command inside MULTI makes EXEC a DISCARD answered -EXECABORT', () => {
    const sink = new RecordingSink();
    const filter = newFilter(sink);
    filter.clientData(Buffer.from(cmd('MULTI') + cmd('SET', 'session:1', 'x') + cmd('FLUSHALL') + cmd('EXEC')));
    expect(Buffer.concat(sink.server).toString()).toBe(cmd('MULTI') + cmd('SET', 'session:1', 'x') + cmd('DISCARD'));
    filter.serverData(Buffer.from('+OK\r\n+QUEUED\r\n'));
    filter.serverData(Buffer.from('+OK\r\n'));
    expect(Buffer.concat(sink.client).toString()).toBe('+OK\r\n+QUEUED\r\n-ERR denied by sidewall (rule no-admin)\r\n-EXECABORT Transaction discarded because of previous errors.\r\n');
  });

  it('inline commands are read as redis-server splits them (quotes, NUL)', () => {
    const p = new RedisParser();
    const r = p.feed('client', Buffer.from('*1\r\n$4\r\nPING\r\nGET "session:\\x41b" extra\r\nDEL \'a\\\'b\'\r\nGET x\0FLUSHALL\r\n'));
    expect(r.error).toBeNull();
    const cmds = r.events.filter((e) => e.type === 'redis.command').map((e) => e.type === 'redis.command' && [e.command, e.keys]);
    expect(cmds).toEqual([['PING', []], ['GET', ['session:Ab']], ['DEL', ["a'b"]], ['GET', ['x']]]);
    expect(new RedisParser().feed('client', Buffer.from('GET "a\r\n')).error?.code).toBe('ERR_MALFORMED');
    // string2ll: no leading zeros, no '+'
    expect(new RedisParser().feed('client', Buffer.from('*1\r\n$04\r\nPING\r\n')).error?.code).toBe('ERR_MALFORMED');
    // A header line ends at CR; redis-server skips the byte after it unread.
    const q = new RedisParser().feed('client', Buffer.from('*2\rX$3\rYGET\r\n$1\r\nk\r\n'));
    expect(q.events.filter((e) => e.type === 'redis.command').map((e) => e.type === 'redis.command' && e.keys)).toEqual([['k']]);
  });

  it('finds keys by each command key spec', () => {
    const keysOf = (...args: string[]): readonly string[] | null => {
      const ev = new RedisParser().feed('client', Buffer.from(cmd(...args))).events.find((e) => e.type === 'redis.command');
      return ev?.type === 'redis.command' ? ev.keys : null;
    };
    expect(keysOf('EVAL', 'return 1', '2', 'k1', 'k2', 'arg')).toEqual(['k1', 'k2']);
    expect(keysOf('ZUNIONSTORE', 'dst', '2', 'a', 'b', 'WEIGHTS', '1', '2')).toEqual(['dst', 'a', 'b']);
    expect(keysOf('XREAD', 'COUNT', '2', 'STREAMS', 's1', 's2', '0', '0')).toEqual(['s1', 's2']);
    expect(keysOf('BLPOP', 'a', 'b', '0')).toEqual(['a', 'b']);
    expect(keysOf('MSET', 'a', '1', 'b', '2')).toEqual(['a', 'b']);
    expect(keysOf('FROBNICATE', 'x')).toBeNull();
    expect(keysOf('FLUSHALL')).toEqual([]);
  });

  it('a command whose keys are unknown matches deny rules with keys, never allow rules with keys', () => {
    const policy = policyOf([
      { id: 'deny-secret', action: 'deny', redis: { keys: ['secret:*'] } },
      { id: 'allow-any-key', action: 'allow', redis: { keys: ['*'] } },
    ]);
    const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 1 }, dst: { ip: '10.0.0.2', port: 6379 }, protocol: 'redis' };
    expect(policy.decide({ ...facts, l7: { redis: { command: 'FROB', keys: null } } }).ruleId).toBe('deny-secret');
    expect(policy.decide({ ...facts, l7: { redis: { command: 'GET', keys: ['a'] } } }).ruleId).toBe('allow-any-key');
    expect(policy.decide({ ...facts, l7: { redis: { command: 'PING', keys: [] } } }).ruleId).toBe('default');
    expect(policy.decide({ ...facts, l7: { redis: { command: 'DEL', keys: ['a', 'secret:x'] } } }).ruleId).toBe('deny-secret');
  });

  it('parses RESP3 replies: maps, attributes, pushes', () => {
    const p = new RedisParser();
    const r = p.feed('server', Buffer.from('%1\r\n+a\r\n:1\r\n|1\r\n+ttl\r\n:3\r\n$1\r\nx\r\n>2\r\n$7\r\nmessage\r\n$1\r\ny\r\n-ERR no\r\n_\r\n'));
    expect(r.error).toBeNull();
    expect(r.events.map((e) => e.type === 'redis.reply' && [e.kind, e.push, e.error])).toEqual([
      ['%', false, null], ['$', false, null], ['>', true, null], ['-', false, 'ERR no'], ['_', false, null],
    ]);
  });

  it('a captured RESP3 session (redis-cli -3, CLIENT TRACKING): one reply per command plus the invalidation push', () => {
    const f = loadFixtures().find((x) => x.file === 'redis-resp3-tracking.json')!;
    const { events, errors } = runStream(new RedisParser(), f.segments);
    expect(errors).toEqual([]);
    const commands = events.filter((e) => e.type === 'redis.command');
    const replies = events.filter((e) => e.type === 'redis.reply' && !e.push);
    const pushes = events.filter((e) => e.type === 'redis.reply' && e.push);
    expect(replies.length).toBe(commands.length);
    expect(pushes.length).toBeGreaterThanOrEqual(1);
  });
});
