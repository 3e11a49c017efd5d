// Path templates: a request path reduced to the glob a learned rule allows (src/policy/README.md
// "Globs": in `http.paths`, '*' is one segment). Paths are first normalised the way the rules
// engine normalises them before matching (RFC 3986 5.2.4 dot segments, 2.3 unreserved decoding),
// so that the template always matches the path it came from.
import { normalizePath } from '../policy/glob.js';
import { templatePathSegment } from './segment-classifier.js';

/** Maximum depth kept; deeper paths end in '/**'. */
export const MAX_PATH_DEPTH = 16;

/** The normalised path's segments: '/a/b/' → ['a', 'b', '']; '/' → []. */
export function pathSegments(path: string): string[] {
  const normal = normalizePath(path);
  if (normal === '/' || normal === '*' || normal === '') return [];
  return normal.slice(1).split('/');
}

/** '/api/users/42/orders?x=1' → '/api/users/*\/orders'. Fixed words are kept. */
export function templatePath(path: string): string {
  const segments = pathSegments(path);
  if (segments.length === 0) return '/';
  const deep = segments.length > MAX_PATH_DEPTH;
  const kept = deep ? segments.slice(0, MAX_PATH_DEPTH) : segments;
  return '/' + kept.map(templatePathSegment).join('/') + (deep ? '/**' : '');
}
