// Redis (RESP2/RESP3): command detection, the command/reply parser and per-command verdicts.
import { RedisEnforcer } from '../../enforcement/redis-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { detectRedis } from './detect.js';
import { RedisParser } from './redis-parser.js';

export const redisProtocol = {
  name: 'redis',
  detectClient: detectRedis,
  createParser: () => new RedisParser(),
  enforcer: (deps) => new RedisEnforcer(deps),
} as const satisfies ProtocolPlugin<'redis'>;
