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
