// The `l7` fields of Redis request records (one per command; redis-enforcer.ts), for the
// flow-record schema (src/schema/flow-record.ts assembles every protocol's).
import type { JsonSchema } from '../plugin.js';

export const REDIS_RECORD_FIELDS: Readonly<Record<string, JsonSchema>> = {
  command: { type: 'string', description: 'The command name, upper-cased.' },
  subcommand: { type: 'string', description: 'Its subcommand (CONFIG GET, CLIENT KILL, ...).' },
  keys: { type: 'array', items: { type: 'string' }, maxItems: 16, description: "The keys by the command's key spec (at most 16)." },
  inline: { type: 'boolean', description: 'Sent as an inline command (not RESP).' },
  reply: { type: 'string', description: "The reply's RESP type byte (+ - : $ * % ~ > ...)." },
  error: { type: 'string', description: "A server error reply's text." },
  aborted: { type: 'boolean', description: 'A denied or poisoned EXEC, sent as DISCARD.' },
};
