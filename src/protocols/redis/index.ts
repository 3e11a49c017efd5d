// Redis (RESP2/RESP3): command detection, the command/reply parser, per-command verdicts and
// the `redis: {commands, keys}` rule block.
import { RedisEnforcer } from './redis-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { detectRedis } from './detect.js';
import { redisLearning } from './learn.js';
import { RedisParser } from './redis-parser.js';
import { REDIS_RECORD_FIELDS } from './record-fields.js';
import { redisRuleBlock } from './rule-block.js';

export const redisProtocol = {
  name: 'redis',
  detectClient: detectRedis,
  createParser: () => new RedisParser(),
  enforcer: (deps) => new RedisEnforcer(deps),
  ruleBlock: redisRuleBlock as ProtocolPlugin['ruleBlock'],
  learn: redisLearning,
  recordFields: REDIS_RECORD_FIELDS,
} as const satisfies ProtocolPlugin<'redis'>;
