// Where a Redis command's keys are among its arguments: the key specs of Redis 7's command table
// (`COMMAND INFO`, src/commands/*.json: begin_search index / keyword, find_keys range / keynum),
// for the commands an application uses. A command not in this table has keys we do not know
// (`null`): allow rules with `keys` do not match it, deny rules with `keys` do (fail closed).
// Argument indexes count the command name as 0.

export type KeySpec =
  /** Keys at first, first+step, ... up to last (negative: counted from the end, -1 = the last argument). */
  | { readonly kind: 'range'; readonly first: number; readonly last: number; readonly step: number }
  /** The argument at `numkeysAt` says how many keys follow from `first`; `extra`: keys before it (ZUNIONSTORE's destination). */
  | { readonly kind: 'numkeys'; readonly numkeysAt: number; readonly first: number; readonly extra: readonly number[] }
  /** XREAD/XREADGROUP: after the STREAMS keyword, the first half of what follows are keys. */
  | { readonly kind: 'streams' }
  /** The command names no keys. */
  | { readonly kind: 'none' };

const one = { kind: 'range', first: 1, last: 1, step: 1 } as const;
const all = { kind: 'range', first: 1, last: -1, step: 1 } as const;
const two = { kind: 'range', first: 1, last: 2, step: 1 } as const;
const allButLast = { kind: 'range', first: 1, last: -2, step: 1 } as const;
const pairs = { kind: 'range', first: 1, last: -1, step: 2 } as const;
const none = { kind: 'none' } as const;
const second = { kind: 'range', first: 2, last: 2, step: 1 } as const;
const numkeys2 = { kind: 'numkeys', numkeysAt: 2, first: 3, extra: [] } as const;
const numkeys1 = { kind: 'numkeys', numkeysAt: 1, first: 2, extra: [] } as const;
const store = { kind: 'numkeys', numkeysAt: 2, first: 3, extra: [1] } as const;

const SPECS = new Map<string, KeySpec>();
function add(spec: KeySpec, names: string): void {
  for (const n of names.split(/\s+/)) if (n !== '') SPECS.set(n, spec);
}

add(one, `GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX APPEND STRLEN INCR DECR INCRBY DECRBY
  INCRBYFLOAT SETRANGE GETRANGE SUBSTR SETBIT GETBIT BITCOUNT BITPOS BITFIELD BITFIELD_RO LCS
  EXPIRE PEXPIRE EXPIREAT PEXPIREAT EXPIRETIME PEXPIRETIME TTL PTTL PERSIST TYPE DUMP RESTORE MOVE
  HSET HSETNX HGET HMSET HMGET HDEL HLEN HSTRLEN HKEYS HVALS HGETALL HEXISTS HINCRBY HINCRBYFLOAT
  HRANDFIELD HSCAN LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LREM LTRIM LINSERT
  LPOS SADD SREM SCARD SMEMBERS SISMEMBER SMISMEMBER SRANDMEMBER SPOP SSCAN ZADD ZREM ZCARD ZSCORE
  ZMSCORE ZINCRBY ZRANK ZREVRANK ZRANGE ZREVRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX
  ZREVRANGEBYLEX ZCOUNT ZLEXCOUNT ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREMRANGEBYLEX ZPOPMIN ZPOPMAX
  ZRANDMEMBER ZSCAN PFADD XADD XLEN XRANGE XREVRANGE XDEL XTRIM XACK XCLAIM XAUTOCLAIM XPENDING
  XSETID GEOADD GEODIST GEOHASH GEOPOS GEOSEARCH GEORADIUS_RO GEORADIUSBYMEMBER_RO`);
add(all, `DEL UNLINK EXISTS TOUCH MGET WATCH SINTER SUNION SDIFF PFCOUNT PFMERGE SINTERSTORE
  SUNIONSTORE SDIFFSTORE`);
add(two, 'RENAME RENAMENX RPOPLPUSH SMOVE LMOVE COPY GEOSEARCHSTORE ZRANGESTORE');
add({ kind: 'range', first: 1, last: 2, step: 1 }, 'BLMOVE BRPOPLPUSH');
add(allButLast, 'BLPOP BRPOP BZPOPMIN BZPOPMAX');
add(pairs, 'MSET MSETNX');
add(numkeys2, 'EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO');
add(numkeys1, 'ZUNION ZINTER ZDIFF ZINTERCARD SINTERCARD LMPOP ZMPOP');
add({ kind: 'numkeys', numkeysAt: 2, first: 3, extra: [] }, 'BLMPOP BZMPOP');
add(store, 'ZUNIONSTORE ZINTERSTORE ZDIFFSTORE');
add({ kind: 'streams' }, 'XREAD XREADGROUP');
add(second, 'OBJECT');
add(none, `PING ECHO AUTH HELLO SELECT QUIT RESET MULTI EXEC DISCARD UNWATCH INFO DBSIZE FLUSHDB
  FLUSHALL KEYS SCAN RANDOMKEY TIME CLIENT CONFIG COMMAND DEBUG MODULE SAVE BGSAVE BGREWRITEAOF
  LASTSAVE SHUTDOWN SLOWLOG MONITOR SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE SSUBSCRIBE
  SUNSUBSCRIBE PUBLISH SPUBLISH PUBSUB SCRIPT FUNCTION WAIT WAITAOF ROLE LATENCY LOLWUT READONLY
  READWRITE SWAPDB ACL CLUSTER REPLICAOF SLAVEOF SYNC PSYNC FAILOVER`);
// MEMORY USAGE key; other MEMORY subcommands name none. Decided on the subcommand below.

/** Commands whose first argument is a subcommand, kept for records (`CONFIG SET`, `CLIENT REPLY`). */
export const CONTAINER_COMMANDS: ReadonlySet<string> = new Set([
  'ACL', 'CLIENT', 'CLUSTER', 'COMMAND', 'CONFIG', 'DEBUG', 'FUNCTION', 'LATENCY', 'MEMORY', 'MODULE',
  'OBJECT', 'PUBSUB', 'SCRIPT', 'SLOWLOG', 'XGROUP', 'XINFO',
]);

/** XGROUP and XINFO subcommands take the stream key next; MEMORY USAGE too. */
const KEY_AFTER_SUBCOMMAND: ReadonlySet<string> = new Set(['XGROUP', 'XINFO', 'MEMORY']);

export function keySpecOf(command: string, subcommand: string | null): KeySpec | null {
  if (KEY_AFTER_SUBCOMMAND.has(command)) {
    if (command === 'MEMORY') return subcommand === 'USAGE' ? second : subcommand === null ? null : none;
    if (subcommand === 'HELP') return none;
    return second;
  }
  return SPECS.get(command) ?? null;
}

/**
 * The argument indexes that hold keys, given the argument count (name included) and a lookup of
 * already-read arguments. `undefined` while an argument it depends on (numkeys, STREAMS) has not
 * been read yet; `null` when the spec cannot say (a malformed numkeys: Redis refuses the command,
 * and so do deny rules with keys).
 */
export function keyIndexes(spec: KeySpec, argc: number, arg: (i: number) => string | undefined): number[] | null | undefined {
  switch (spec.kind) {
    case 'none':
      return [];
    case 'range': {
      const last = spec.last < 0 ? argc + spec.last : spec.last;
      const out: number[] = [];
      for (let i = spec.first; i <= last && i < argc; i += spec.step) out.push(i);
      return out;
    }
    case 'numkeys': {
      if (spec.numkeysAt >= argc) return null;
      const text = arg(spec.numkeysAt);
      if (text === undefined) return undefined;
      if (!/^\d{1,9}$/.test(text)) return null;
      const n = Number(text);
      if (spec.first + n > argc) return null;
      const out = [...spec.extra];
      for (let i = 0; i < n; i++) out.push(spec.first + i);
      return out;
    }
    case 'streams': {
      for (let i = 1; i < argc; i++) {
        const text = arg(i);
        if (text === undefined) return undefined;
        if (text.toUpperCase() === 'STREAMS') {
          const rest = argc - i - 1;
          if (rest === 0 || rest % 2 !== 0) return null;
          const out: number[] = [];
          for (let k = 0; k < rest / 2; k++) out.push(i + 1 + k);
          return out;
        }
      }
      return null;
    }
  }
}

/**
 * The key prefix a learner keeps: up to and including the last ':' (`session:abc` → `session:*`);
 * a key without ':' is kept when it is a plain word (`counter`), else '*' (an id).
 */
export function keyTemplate(key: string): string {
  const cut = key.lastIndexOf(':');
  if (cut >= 0) return `${key.slice(0, cut + 1)}*`;
  return /^[A-Za-z_.-]{1,64}$/.test(key) ? key : '*';
}
