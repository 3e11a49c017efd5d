// Glob patterns of rules, compiled once to a Set of literals plus at most one anchored RegExp.
//
// Semantics (also in docs of the rule schema):
// - HTTP paths ('/api/*/items', '/static/**'): '*' matches any characters except '/', i.e. within
//   one segment (including none); '**' matches any characters including '/'. A trailing '/**'
//   also matches the parent itself ('/api/**' matches '/api', '/api/', '/api/v1/x'). Paths are
//   matched case-sensitively (RFC 3986 6.2.2.1) after normalisation (see normalizePath).
// - Host names, TLS SNI and DNS names ('*.example.com', 'api-*.example.com', '**.example.com'):
//   case-insensitive (RFC 4343), trailing dot ignored. '*' matches within one label (no dots);
//   a leading '**.' matches zero or more whole labels ('**.example.com' matches 'example.com' and
//   'a.b.example.com'); '**' alone matches every name.
//   DNS names and TLS SNI are matched label by label as they are (normalizeName): no port or
//   bracket is stripped, and a name with a label that is not a host-name label (a dot inside a
//   label, as the DNS parser writes it escaped '\.', or any character outside letters, digits,
//   '-' and '_') matches no allow or pass rule and every deny rule with a names/sni matcher
//   (fail closed: what we cannot read as the resolver or the TLS server will is not allowed).
// - gRPC services ('shop.v1.*', 'shop.**'): like names, but case-sensitive (protobuf full names).
// - gRPC methods and header values: '*' matches any characters.
// Any other character is literal. A pattern without '*' is compared as a plain string.

export interface GlobMatcher {
  readonly exact: ReadonlySet<string>;
  readonly pattern: RegExp | null;
}

export type GlobKind = 'path' | 'name' | 'service' | 'plain';

export type GlobResult = { ok: true; source: string } | { ok: false; message: string };

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.|?+()[\]{}]/g, '\\$&');
}

const NAME_LABEL = /^(\*\*|[a-z0-9_*-]+)$/;
const SERVICE_PART = /^(\*\*|[A-Za-z0-9_*]+)$/;

/** Validates one pattern and returns its RegExp source (unanchored), or a message for the user. */
export function globToRegExpSource(kind: GlobKind, glob: string): GlobResult {
  if (glob.length === 0) return { ok: false, message: 'is empty' };
  if (/[\u0000-\u0020\u007f]/.test(glob)) return { ok: false, message: `'${glob}' contains whitespace or control characters` };
  if (glob.includes('***')) return { ok: false, message: `'${glob}' has '***'; use '*' (one segment) or '**' (any depth)` };
  switch (kind) {
    case 'path': {
      if (!glob.startsWith('/') && glob !== '*' && glob !== '**') {
        return { ok: false, message: `'${glob}' must start with '/' (paths are matched without scheme and host)` };
      }
      if (glob.includes('?') || glob.includes('#')) {
        return { ok: false, message: `'${glob}' contains '?' or '#'; paths are matched without the query string and fragment` };
      }
      let source = '';
      let i = 0;
      while (i < glob.length) {
        if (glob.startsWith('/**', i) && i + 3 === glob.length) {
          source += '(?:/.*)?';
          i += 3;
        } else if (glob.startsWith('**', i)) {
          source += '.*';
          i += 2;
        } else if (glob[i] === '*') {
          source += '[^/]*';
          i += 1;
        } else {
          source += escapeRegExp(glob[i]!);
          i += 1;
        }
      }
      return { ok: true, source };
    }
    case 'name':
    case 'service': {
      const separatorHint = kind === 'name' ? 'a DNS name pattern' : 'a protobuf full name pattern (such as shop.v1.Cart)';
      const text = kind === 'name' ? glob.toLowerCase().replace(/\.$/, '') : glob;
      if (kind === 'name' && text.includes(':')) {
        return { ok: false, message: `'${glob}' has a port; names are matched without the port` };
      }
      const parts = text.split('.');
      const partPattern = kind === 'name' ? NAME_LABEL : SERVICE_PART;
      let source = '';
      for (let p = 0; p < parts.length; p++) {
        const part = parts[p]!;
        if (!partPattern.test(part)) {
          return { ok: false, message: `'${glob}' is not ${separatorHint} (bad part '${part}'; '*' matches within one part, '**' any number of parts)` };
        }
        if (part === '**') {
          if (parts.length === 1) source = '.*';
          else if (p === 0) source += `(?:.*\\.)?`;
          else return { ok: false, message: `'${glob}': '**' may only be the first part ('**.example.com') or the whole pattern` };
          continue;
        }
        if (part.includes('**')) return { ok: false, message: `'${glob}': '**' must be a whole part` };
        const sep = p > 0 && parts[p - 1] !== '**' ? '\\.' : '';
        source += sep + part.split('*').map(escapeRegExp).join('[^.]*');
      }
      return { ok: true, source };
    }
    case 'plain':
      return { ok: true, source: glob.split('*').map(escapeRegExp).join('.*') };
  }
}

/** Compiles already-validated patterns. Name patterns are lower-cased (callers lower-case input). */
export function compileGlobs(kind: GlobKind, globs: readonly string[]): GlobMatcher {
  const exact = new Set<string>();
  const sources: string[] = [];
  for (const raw of globs) {
    const glob = kind === 'name' ? raw.toLowerCase().replace(/\.$/, '') : raw;
    if (!glob.includes('*')) {
      exact.add(glob);
      continue;
    }
    const result = globToRegExpSource(kind, glob);
    if (!result.ok) throw new Error(`internal: unvalidated glob ${glob}: ${result.message}`);
    sources.push(result.source);
  }
  const pattern = sources.length === 0 ? null : new RegExp(`^(?:${sources.join('|')})$`, 's');
  return { exact, pattern };
}

export function globMatches(matcher: GlobMatcher, value: string): boolean {
  return matcher.exact.has(value) || (matcher.pattern !== null && matcher.pattern.test(value));
}

/**
 * Normalises a request target's path for matching, so that '/admin' cannot be reached past an
 * allow or deny rule as '/%61dmin', '/public/../admin' or '//admin':
 * the query and fragment are dropped, percent-encoded unreserved characters are decoded
 * (RFC 3986 2.3 and 6.2.2.2), dot segments are removed (RFC 3986 5.2.4) and repeated slashes
 * are merged. An absolute-form target ('http://host/path', RFC 9112 3.2.2) is reduced to its path.
 * Other percent-encodings (such as '%2F') are kept, uppercased, as the server may treat them
 * differently from the character.
 */
export function normalizePath(target: string): string {
  let path = target;
  const cut = path.search(/[?#]/);
  if (cut !== -1) path = path.slice(0, cut);
  if (!path.startsWith('/')) {
    const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]*/.exec(path);
    if (scheme !== null) path = path.slice(scheme[0].length) || '/';
    else if (path === '*') return '*';
    else path = '/' + path;
  }
  if (path.includes('%')) {
    path = path.replace(/%([0-9a-fA-F]{2})/g, (whole, hex: string) => {
      const code = parseInt(hex, 16);
      const ch = String.fromCharCode(code);
      return /[A-Za-z0-9\-._~]/.test(ch) ? ch : whole.toUpperCase();
    });
  }
  if (!path.includes('//') && !path.includes('/.')) return path;
  return removeDotSegments(path);
}

/**
 * RFC 3986 §5.2.4 dot-segment removal with empty segments merged (Envoy merge_slashes), on a path
 * that starts with `/`. Shared by the rules' path normalisation and the request-target check.
 */
export function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const output: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    if (segment === '.' || segment === '') {
      if (last) output.push('');
      continue;
    }
    if (segment === '..') {
      output.pop();
      if (last) output.push('');
      continue;
    }
    output.push(segment);
  }
  return '/' + output.join('/');
}

/** Lower-cases a host header or SNI and drops a port and trailing dot ('Api.Example.com.:8080'). */
export function normalizeHost(host: string): string {
  let h = host;
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    h = close === -1 ? h : h.slice(0, close + 1);
  } else {
    const colon = h.lastIndexOf(':');
    if (colon !== -1 && h.indexOf(':') === colon) h = h.slice(0, colon);
  }
  h = h.toLowerCase();
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

/** RFC 1035 §2.3.1 letters, digits and '-', plus '_' (RFC 2782 service labels, e.g. _sip._tcp). */
const HOST_LABEL = /^[a-z0-9_-]{1,63}$/;

/**
 * A DNS name or TLS SNI for matching (RFC 4343: case-insensitive; one trailing dot ignored), or
 * null when it is not a host name: an empty label, a label longer than 63 octets, a name longer
 * than 253 characters, or any character outside letters, digits, '-' and '_' — ':' and ']'
 * included, so 't.svc.cluster.local:x.attacker.com' is refused rather than cut at the colon
 * (RFC 6066 §3: SNI is a host name without port; RFC 1035 §3.1: names are labels). The root
 * name ('' or '.') is valid.
 */
export function normalizeName(name: string): string | null {
  let n = name.toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n.length === 0) return name.length <= 1 ? '' : null;
  if (n.length > 253) return null;
  const labels = n.split('.');
  for (let i = 0; i < labels.length; i++) if (!HOST_LABEL.test(labels[i]!)) return null;
  return n;
}

/**
 * A name matcher against a name that may not be a host name (null, see normalizeName): such a
 * name matches deny rules only — fail closed, whatever the patterns say.
 */
export function nameMatches(matcher: GlobMatcher, name: string | null, action: 'allow' | 'deny' | 'pass'): boolean {
  return name === null ? action === 'deny' : globMatches(matcher, name);
}
