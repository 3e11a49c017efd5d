// Path templating (issue 9): what varies collapses to '*', fixed words stay, and a template always
// matches the path it came from under the rules engine's own glob semantics.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileGlobs, globMatches, normalizePath } from '../../../src/policy/glob.js';
import { isVariableSegment, templatePath } from '../../../src/learn/index.js';

const hex = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: min, maxLength: max });
const uuid = fc.uuid();
const numberId = fc.bigInt({ min: 0n, max: 10n ** 18n }).map(String);
/** Hashes and object ids: hex of 8+ characters with at least one digit. */
const hexId = hex(8, 64).filter((h) => /\d/.test(h));
/** base64url tokens of 16+ characters that mix cases and digits. */
const token = fc
  .string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 16, maxLength: 40 })
  .filter((t) => /[A-Z]/.test(t) && /[a-z]/.test(t) && /\d/.test(t));
const id = fc.oneof(uuid, numberId, hexId, token, uuid.map((u) => u.toUpperCase()), hex(32, 32).map((h) => h.replace(/^./, '1')));

/** Route words: lower-case letters (kebab- or snake-case, camelCase), versions like v1 or v2beta1. */
const letters = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz'), minLength: 1, maxLength: 12 });
const word = fc.oneof(
  letters,
  fc.tuple(letters, letters).map(([a, b]) => `${a}-${b}`),
  fc.tuple(letters, letters).map(([a, b]) => `${a}_${b}`),
  fc.tuple(letters, letters).map(([a, b]) => `${a}${b[0]!.toUpperCase()}${b.slice(1)}`),
  fc.tuple(fc.integer({ min: 1, max: 9 }), fc.constantFrom('', 'alpha1', 'beta2')).map(([n, s]) => `v${n}${s}`),
  fc.tuple(letters, fc.constantFrom('.json', '.html', '.css')).map(([a, e]) => `${a}${e}`),
);
const words = fc.array(word, { minLength: 1, maxLength: 6 });

function matches(glob: string, path: string): boolean {
  return globMatches(compileGlobs('path', [glob]), normalizePath(path));
}

describe('templatePath', () => {
  it('collapses ids (numbers, UUIDs, hashes, tokens) wherever they appear', () => {
    fc.assert(
      fc.property(words, id, words, (before, value, after) => {
        const path = `/${before.join('/')}/${value}/${after.join('/')}`;
        expect(templatePath(path)).toBe(`/${before.join('/')}/*/${after.join('/')}`);
      }),
    );
  });

  it('keeps fixed words as they are', () => {
    fc.assert(
      fc.property(words, (segments) => {
        const path = `/${segments.join('/')}`;
        expect(templatePath(path)).toBe(path);
        for (const s of segments) expect(isVariableSegment(s)).toBe(false);
      }),
    );
  });

  it('gives a template that matches the path it came from, and is stable when applied again', () => {
    const segment = fc.oneof(word, id, fc.string({ maxLength: 20 }).map((s) => encodeURIComponent(s)));
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 20 }), fc.boolean(), (segments, query) => {
        const path = `/${segments.join('/')}${query ? '?a=1' : ''}`;
        const template = templatePath(path);
        expect(matches(template, path)).toBe(true);
        expect(templatePath(template)).toBe(template);
      }),
    );
  });

  it('normalises the way the rules engine does before templating', () => {
    expect(templatePath('/api/users/42/../43/orders?page=2')).toBe('/api/users/*/orders');
    expect(templatePath('//api///v1/items/')).toBe('/api/v1/items/');
    expect(templatePath('/')).toBe('/');
    expect(templatePath('/files/report-2024-01.pdf')).toBe('/files/*');
    expect(templatePath('/orders/INV-2024-0001/lines/3')).toBe('/orders/*/lines/*');
  });

  it('turns segments a glob cannot hold literally into *', () => {
    expect(templatePath('/a/b*c/d')).toBe('/a/*/d');
    expect(templatePath(`/a/${'x'.repeat(80)}/d`)).toBe('/a/*/d');
  });

  it('ends very deep paths in /**', () => {
    const deep = '/' + Array.from({ length: 30 }, (_, i) => `p${String.fromCharCode(97 + (i % 26))}`).join('/');
    const template = templatePath(deep);
    expect(template.endsWith('/**')).toBe(true);
    expect(matches(template, deep)).toBe(true);
  });
});
