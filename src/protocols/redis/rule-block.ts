// The `redis: {commands, keys}` rule block (PRODUCT.md "Rules"): its schema, and its matcher over
// the facts the Redis enforcer decides each command with (`{redis: RedisFacts}`).
import { compileGlobs, globMatches } from '../../policy/glob.js';
import { blockSchema, normalizeLists, oneOrList, str } from '../../schema/rule-block.js';
import type { RuleBlockPlugin } from '../plugin.js';

/** What a rule sees of one command. keys: by the command's key spec; null when unknown (deny rules with keys match, allow rules do not). */
export interface RedisFacts {
  command: string;
  keys: readonly string[] | null;
}

export interface RedisBlock {
  /** Upper-cased command name globs. */
  commands?: string[];
  keys?: string[];
}

export const redisRuleBlock: RuleBlockPlugin<RedisBlock, RedisFacts> = {
  key: 'redis',
  protocols: ['redis'],
  schema: blockSchema('redis', {
    commands: oneOrList(str({
      pattern: '^[A-Za-z0-9_|.*-]{1,64}$',
      'x-messages': { pattern: "'{value}' is not a Redis command name (letters, digits, '_', '-', '|', '.', '*' as glob)" },
    })),
    keys: oneOrList(str({
      minLength: 1,
      maxLength: 4096,
      'x-messages': { minLength: "'{value}' is not a key pattern (1–4096 bytes, '*' matches any characters)", maxLength: 'is too long for a key pattern (at most 4096 bytes)' },
    })),
  }),
  normalize: (block) => normalizeLists(block, { commands: (s) => s.toUpperCase() }),
  compile: (block) => {
    const names = block.commands === undefined ? null : compileGlobs('plain', block.commands);
    const keyGlobs = block.keys === undefined ? null : compileGlobs('plain', block.keys);
    return (redis, action) => {
      if (names !== null && !globMatches(names, redis.command)) return false;
      if (keyGlobs === null) return true;
      // Unknown key positions: only a deny rule can be said to apply (fail closed). An allow
      // rule covers a command when it covers every key it touches (and it touches one); a deny
      // rule applies when it names any of them.
      const keys = redis.keys;
      if (keys === null) return action === 'deny';
      if (keys.length === 0) return false;
      if (action === 'deny') return keys.some((k) => globMatches(keyGlobs, k));
      return keys.every((k) => globMatches(keyGlobs, k));
    };
  },
};
