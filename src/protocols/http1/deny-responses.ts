// What a denied client hears instead of the server (PRODUCT.md: HTTP 403, gRPC status 7
// PERMISSION_DENIED, DNS REFUSED, TCP reset). The rule id is named so the denial can be traced.
export function http1Forbidden(ruleId: string): Buffer {
  const body = `denied by sidewall (rule ${ruleId})\n`;
  return Buffer.from(
    'HTTP/1.1 403 Forbidden\r\n' +
      'content-type: text/plain; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-sidewall-rule: ${ruleId}\r\n` +
      'connection: close\r\n\r\n' +
      body,
    'latin1',
  );
}

/** A request refused before any rule (its target or host is ambiguous): 400, and the reason. */
export function http1BadRequest(reason: string): Buffer {
  const body = `refused by sidewall: ${reason.replace(/[^\x20-\x7e]/g, '?')}\n`;
  return Buffer.from(
    'HTTP/1.1 400 Bad Request\r\n' +
      'content-type: text/plain; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      'x-sidewall-rule: http:invalid-target\r\n' +
      'connection: close\r\n\r\n' +
      body,
    'latin1',
  );
}
