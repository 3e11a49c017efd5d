// Redis learning: commands by key template (a key collapsed to its prefix, `session:*`;
// redis-commands.ts keyTemplate); one `redis: {commands, keys}` rule per key template.
import type { LearnedDraft, LearnPlugin } from '../plugin.js';
import { keyTemplate } from './redis-commands.js';

const COMMAND = /^[A-Z0-9_|.-]{1,64}$/;

export const redisLearning: LearnPlugin = {
  // Connections too: a session that sent no command is learned as the protocol.
  family: (record) => record.protocol,
  observe: (record, _family, into) => {
    if (record.type !== 'request') return;
    const l7 = record.l7;
    const command = typeof l7.command === 'string' && COMMAND.test(l7.command) ? l7.command : null;
    if (command === null) {
      into.drop();
      return;
    }
    // Value sets by key template ('' for commands without keys): the commands seen on them.
    const keys = Array.isArray(l7.keys) ? l7.keys.filter((k): k is string => typeof k === 'string') : [];
    if (keys.length === 0) into.value('', command);
    for (const key of keys) into.value(keyTemplate(key), command);
  },
  rules: (entry) => {
    const stats = { count: entry.count, first: entry.first, last: entry.last };
    const templates = entry.valueSets();
    if (templates.length === 0) return [{ protocol: 'redis', specificity: 50, unit: 'connections', ...stats }];
    return templates.map((template): LearnedDraft => {
      const commands = [...(entry.values(template) ?? [])].filter((c) => COMMAND.test(c)).sort();
      const redis: Record<string, unknown> = { commands };
      if (template !== '') redis.keys = [template];
      const id = template === '' ? 'no-keys' : template.replace(/\*$/, '').replace(/:$/, '') || 'any';
      return { protocol: 'redis', block: { key: 'redis', value: redis }, id, specificity: 100 + (template === '' ? 0 : template.length), unit: 'commands', ...stats };
    });
  },
  phrase: ({ l7 }) => (typeof l7.command === 'string' ? `redis ${l7.command}${Array.isArray(l7.keys) && typeof l7.keys[0] === 'string' ? ` ${l7.keys[0]}` : ''}` : null),
};
