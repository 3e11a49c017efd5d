// Every schema sidewall validates with is a well-formed draft-07 schema (the runtime compiles with
// validateSchema off to save start time, so this is where a malformed schema is caught), and the
// error translation names the path and says how to fix it.
import { Ajv } from 'ajv';
import { describe, expect, test } from 'vitest';
import { configSchema } from '../../../src/config/config-schema.js';
import { ruleSchema } from '../../../src/policy/rule-schema.js';
import { compileSchema, fieldOf } from '../../../src/schema/validator.js';
import { settingsSchema } from '../../../injector/settings-schema.js';

const schemas = {
  'workload rule': ruleSchema('workload'),
  'cluster rule': ruleSchema('cluster'),
  'rule (both tiers, what a process compiles)': ruleSchema('any'),
  'sidecar config': configSchema(),
  'injector settings': settingsSchema(),
};

describe('the schemas', () => {
  test.each(Object.entries(schemas))('%s is a valid draft-07 schema', (_name, schema) => {
    const ajv = new Ajv({ strict: false });
    expect(ajv.validateSchema(schema), JSON.stringify(ajv.errors)).toBe(true);
  });
});

describe('compileSchema error translation', () => {
  const compiled = compileSchema({
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: {
      name: { type: 'string', 'x-messages': { required: 'is required (the name)' } },
      list: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 1 } },
      mode: { enum: ['a', 'b'] },
      word: { type: 'string', format: 'even', 'x-messages': {} },
    },
  }, { formats: { even: (s) => (s.length % 2 === 0 ? null : `'${s}' has an odd length`) } });

  test('paths name keys and list indexes; messages say what and how', () => {
    expect(compiled.issues({ name: 'x' })).toEqual([]);
    expect(compiled.issues({ nme: 'x', list: [1, 0, 'z'], mode: 'c', word: 'abc' }).map((i) => `${i.field}: ${i.message}`)).toEqual([
      'name: is required (the name)',
      "nme: unknown key 'nme' (did you mean 'name'?)",
      'list[1]: must be at least 1, not 0',
      'list[2]: must be a whole number, not the string \'z\'',
      "mode: must be one of a, b, not 'c'",
      "word: 'abc' has an odd length",
    ]);
    expect(compiled.issues({ name: 1 })[0]!.message).toBe('must be a string, not number 1 (quote it: "1")');
    expect(compiled.issues([])[0]).toMatchObject({ field: '', message: 'must be a mapping, not a list' });
  });

  test('fieldOf', () => {
    expect(fieldOf(['peer', 0, 'cidr', 1])).toBe('peer[0].cidr[1]');
    expect(fieldOf([0, 'a'])).toBe('[0].a');
  });
});
