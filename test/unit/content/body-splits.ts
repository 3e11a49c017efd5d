// Shared by the DLP unit tests: a body cut into the pieces a peer could send it in.

/** `buf` cut at each of `cuts` (taken modulo its length + 1, deduplicated, in order); empty pieces kept. */
export function cutAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(buf.subarray(at, p));
    at = p;
  }
  out.push(buf.subarray(at));
  return out;
}

/** `body` in HTTP/1.1 chunked transfer coding (RFC 9112 §7.1), one chunk per non-empty piece of cutAt. */
export function chunkedEncode(body: Buffer, cuts: number[]): Buffer {
  const parts = cutAt(body, cuts).filter((p) => p.length > 0);
  return Buffer.concat([...parts.flatMap((p) => [Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]), Buffer.from('0\r\n\r\n')]);
}
