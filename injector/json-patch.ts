// RFC 6902 JSON Patch operations, as the admission webhook returns them (patchType "JSONPatch").
// Paths are RFC 6901 JSON Pointers.

export type JsonPatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/** Escapes one reference token of an RFC 6901 JSON Pointer ("~" → "~0", "/" → "~1"). */
export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function pointer(...tokens: Array<string | number>): string {
  return tokens.map((token) => '/' + escapePointerToken(String(token))).join('');
}
