// The validators `npm run build` generates (src/schema/standalone.ts) are what the schemas generate
// now, they are what the sidecar, `policy check` and the webhook use, and they report what ajv
// compiled at run time reports.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { ruleSchema } from '../../../src/policy/rule-schema.js';
import { ruleFormats, ruleValidator } from '../../../src/policy/schema.js';
import * as generatedRules from '../../../src/schema/generated/rules.js';
import { GENERATED_DOCUMENTS, GENERATED_VALIDATORS, generatedModule } from '../../../src/schema/standalone.js';
import { compileSchema, generatedFromFile, validatorCache } from '../../../src/schema/validator.js';
import { injectorSettingsProblems } from '../../../injector/settings.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('generated validators', () => {
  test.each(GENERATED_VALIDATORS.map((t) => [t.file, t] as const))('%s is what the schema generates (else: npm run build)', (file, target) => {
    const text = readFileSync(root + file, 'utf8');
    expect(text === generatedModule(target), `${file} is stale: run \`npm run build\` and commit it`).toBe(true);
  });

  test.each(GENERATED_DOCUMENTS.map((d) => [d.file, d] as const))('%s is what the code and the protocol registry assemble (else: npm run build)', (file, doc) => {
    expect(readFileSync(root + file, 'utf8') === doc.text(), `${file} is stale: run \`npm run build\` and commit it`).toBe(true);
  });

  test('the rule validator in use is the generated one', () => {
    expect(ruleValidator().origin).toBe('generated');
  });

  test('a schema that is not the one the code came from is compiled at run time', () => {
    const schema = ruleSchema('any');
    const changed = { ...schema, description: 'another schema' };
    expect(compileSchema(schema, { formats: ruleFormats(), generated: generatedRules }).origin).toBe('generated');
    expect(compileSchema(changed, { formats: ruleFormats(), generated: generatedRules }).origin).toBe('compiled');
  });

  test('read from its file (not imported, so that it can be collected: issue 18), the generated validator is the same code', () => {
    const fromFile = generatedFromFile(new URL('../../../src/schema/generated/rules.js', import.meta.url));
    expect(fromFile.hash).toBe(generatedRules.hash);
    const schema = ruleSchema('any');
    const viaFile = compileSchema(schema, { formats: ruleFormats(), generated: fromFile });
    const viaImport = compileSchema(schema, { formats: ruleFormats(), generated: generatedRules });
    expect(viaFile.origin).toBe('generated');
    for (const document of [{ id: 'a', action: 'allow' }, { id: 'x', action: 'deny', peer: { cidr: ['10.0.0.1/8', 'nope'] }, ports: ['80-70', 0], protocol: 'htp' }, 'rule']) {
      expect(viaFile.issues(document)).toEqual(viaImport.issues(document));
    }
    // No file: ajv compiles the schema, as for a stale module.
    expect(compileSchema(schema, { formats: ruleFormats(), generated: generatedFromFile(new URL('file:///nonexistent/rules.js')) }).origin).toBe('compiled');
  });

  test('a cached validator is compiled once while it is held', () => {
    let compiles = 0;
    const get = validatorCache(() => {
      compiles++;
      return compileSchema({ type: 'string' });
    });
    const held = get();
    expect(get()).toBe(held);
    expect(compiles).toBe(1);
    expect(held.issues(7)).toHaveLength(1);
  });

  test('generated and compiled report the same issues', () => {
    const schema = ruleSchema('any');
    const generated = compileSchema(schema, { formats: ruleFormats(), generated: generatedRules });
    const compiled = compileSchema(schema, { formats: ruleFormats() });
    const documents: unknown[] = [
      { id: 'a', action: 'allow' },
      { id: 'default', action: 'allw', prots: 1 },
      { id: 'x', action: 'deny', peer: { cidr: ['10.0.0.1/8', 'nope'] }, ports: ['80-70', 0], protocol: 'htp' },
      { id: 'y', action: 'allow', protocol: 'http', http: { paths: ['/a/**/[', 7], methods: 'GET' } },
      { id: 'z', action: 'allow', direction: [], dns: { names: ['*.x.'], types: ['AAA'] } },
      [],
      'rule',
    ];
    for (const document of documents) expect(generated.issues(document)).toEqual(compiled.issues(document));
    expect(generated.issues(documents[2]).length).toBeGreaterThan(2);
  });

  test('the config and injector settings validators still name the field and the fix', () => {
    expect(() => parseConfig({ mode: 'protekt' }, 'c.yaml')).toThrow(/mode: must be one of protect, monitor, learn, not 'protekt'/);
    expect(injectorSettingsProblems({ image: 7 }).join('\n')).toMatch(/image/);
  });
});
