// The request-target normalisation rules see (HTTP/1 and HTTP/2): every decision of the README's
// "Request targets" table, in both escaped-slash modes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizePathPart, normalizePathPartByChar, normalizeRequestTarget, parseAuthority, type TargetOptions } from '../../../src/protocols/http1/request-target.js';

const REJECT: TargetOptions = { escapedSlashes: 'reject' };
const DECODE: TargetOptions = { escapedSlashes: 'decode' };

const path = (target: string, options = REJECT, host: string | undefined = 'api.example') => {
  const r = normalizeRequestTarget('GET', target, host, options);
  return r.ok ? r.path : `refused: ${r.reason}`;
};

describe('paths', () => {
  it.each([
    ['/public/../admin/x', '/admin/x'],
    ['/public/%2e%2e/admin/x', '/admin/x'],
    ['/public/%2E./admin', '/admin'],
    ['/a/./b/.', '/a/b/'],
    ['//admin//x', '/admin/x'],
    ['/../../admin', '/admin'],
    ['/%41dmin', '/Admin'],
    ['/%7euser', '/~user'],
    ['/a%3fb?x=%2F', '/a%3Fb?x=%2F'],
    ['/caf%C3%A9', '/caf%C3%A9'],
    ['/admin;x/secret', '/admin;x/secret'],
    ['/ADMIN', '/ADMIN'],
  ])('%s → %s', (target, expected) => {
    expect(path(target)).toBe(expected);
  });

  it.each([
    ['/public/..%2fadmin/x', /escaped slash/],
    ['/admin%2Fx', /escaped slash/],
    ['/admin%5cx', /escaped backslash/],
    ['/admin\\x', /backslash/],
    ['/admin%00.html', /%00/],
    ['/admin%zz', /invalid percent-encoding/],
    ['/admin%2', /invalid percent-encoding/],
    ['/%C0%AFadmin', /UTF-8/],
    ['/%E0%80%AF', /UTF-8/],
    ['/%ED%A0%80', /UTF-8/],
    ['/%C3', /UTF-8/],
    ['/admin%252Fx', /double percent-encoding/],
    ['/public/..;/admin', /dot segment/],
    ['/a#frag', /#/],
    ['/a%0d%0ab', /control/],
  ])('%s is refused (reject mode)', (target, reason) => {
    expect(path(target)).toMatch(reason);
  });

  it('decodes escaped slashes and backslashes before dot segments in decode mode', () => {
    expect(path('/public/..%2fadmin/x', DECODE)).toBe('/admin/x');
    expect(path('/admin%2Fx', DECODE)).toBe('/admin/x');
    expect(path('/public\\..\\admin', DECODE)).toBe('/admin');
    expect(path('/admin%252Fx', DECODE)).toBe('/admin%252Fx');
    expect(path('/admin%00', DECODE)).toMatch(/%00/);
  });

  it('is idempotent and never leaves a dot segment or an empty segment', () => {
    const piece = fc.constantFrom('a', 'b', '.', '..', '%2e', '%2E%2e', '', '%41', '~', ';p', '%20', '%C3%A9', '%2f', '\\');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), fc.constantFrom(REJECT, DECODE), (parts, options) => {
        const r = normalizeRequestTarget('GET', '/' + parts.join('/'), 'h', options);
        if (!r.ok) return;
        expect(r.path.startsWith('/')).toBe(true);
        expect(r.path.split('/').slice(1, -1).some((s) => s === '' || s === '.' || s === '..')).toBe(false);
        const again = normalizeRequestTarget('GET', r.path, 'h', options);
        expect(again).toEqual(r);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('hosts', () => {
  it('takes the host of an absolute-form target, refusing a Host field that names another', () => {
    expect(normalizeRequestTarget('GET', 'http://secret.example/x', 'api.example')).toMatchObject({ ok: false, reason: /different hosts/ });
    expect(normalizeRequestTarget('GET', 'http://API.example:80/x', 'api.example')).toEqual({ ok: true, path: '/x', host: 'api.example' });
    expect(normalizeRequestTarget('GET', 'http://api.example:8080/x', 'api.example')).toMatchObject({ ok: false });
    expect(normalizeRequestTarget('GET', 'http://secret.example/x', undefined)).toEqual({ ok: true, path: '/x', host: 'secret.example' });
    expect(normalizeRequestTarget('GET', 'http://user@api.example/x', 'api.example')).toMatchObject({ ok: false, reason: /userinfo/ });
    expect(normalizeRequestTarget('GET', 'ftp://api.example/x', 'api.example')).toMatchObject({ ok: false });
  });

  it('matches names label by label: no port or bracket games, no odd characters', () => {
    expect(parseAuthority('Api.Example.:8080')).toEqual({ host: 'api.example', port: 8080 });
    expect(parseAuthority('[::1]:80')).toEqual({ host: '[::1]', port: 80 });
    for (const bad of ['t.svc.cluster.local:x.attacker.com', 'a:1:2', 'a..b', '.a', 'a b', 'a%2eb', 'user@a', '[zz]', 'a:99999', 'a:', '', '[::1]x', 'a/b']) {
      expect(parseAuthority(bad), bad).toBeNull();
    }
  });

  it('refuses a CONNECT whose target is not host:port', () => {
    expect(normalizeRequestTarget('CONNECT', 'db.internal:5432', 'db.internal:5432')).toEqual({ ok: true, path: 'db.internal:5432', host: 'db.internal' });
    expect(normalizeRequestTarget('CONNECT', 'db.internal', undefined)).toMatchObject({ ok: false });
  });
});

describe('the fast path for plain paths', () => {
  // normalizePathPart returns a path with only path characters, no '//' and no '/.' as it is,
  // without the character loop: on any path it must answer exactly what the loop answers.
  const alphabet = fc.constantFrom('/', '/', '/', '.', '..', 'a', 'Z', '0', '-', '_', '~', ';', '=', '@', ':', '%2e', '%2F', '%41', '%', '\\', ' ', '#', 'é', '%C3%A9', '%00', '//', '/./', '/../');
  for (const options of [REJECT, DECODE]) {
    it(`gives what the character loop gives, on 20,000 random paths (escapedSlashes: ${options.escapedSlashes})`, () => {
      fc.assert(
        fc.property(fc.array(alphabet, { maxLength: 12 }), (parts) => {
          const p = '/' + parts.join('');
          expect(normalizePathPart(p, options)).toEqual(normalizePathPartByChar(p, options));
        }),
        { numRuns: 20_000 },
      );
    });
  }

  it('returns plain paths unchanged and still resolves what is not plain', () => {
    for (const p of ['/', '/small', '/api/v1/items;x=1', "/a-b_c~d/!$&'()*+,=:@x", '/trailing/', '/a..b/c.']) expect(normalizePathPart(p, REJECT)).toBe(p);
    expect(normalizePathPart('/a//b', REJECT)).toBe('/a/b');
    expect(normalizePathPart('/a/./b', REJECT)).toBe('/a/b');
    expect(normalizePathPart('/a/../admin', REJECT)).toBe('/admin');
    expect(normalizePathPart('/a/..;x/admin', REJECT)).toEqual({ reason: 'a dot segment with ";" parameters' });
  });
});
