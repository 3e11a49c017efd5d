// Small helpers shared by subcommands for parsing flag values into typed settings with messages
// that name the flag.
export class UsageError extends Error {
  readonly code = 'SIDEWALL_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `min` 0: a port the kernel picks (a listener that reports what it bound). */
export function parsePort(flag: string, text: string, min: 0 | 1 = 1): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > 65535) throw new UsageError(`${flag}: '${text}' is not a port (${min}-65535)`);
  return n;
}

export function parsePortList(flag: string, text: string | undefined): number[] {
  if (text === undefined || text.trim() === '') return [];
  return text.split(',').map((p) => parsePort(flag, p.trim()));
}

export function parseId(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag}: '${text}' is not a numeric id`);
  return Number(text);
}

/** A 32-bit socket mark, decimal or 0x-hex; 0 is "no mark" and cannot identify anyone. */
export function parseMark(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = /^0x[0-9a-fA-F]{1,8}$/.test(text) ? parseInt(text.slice(2), 16) : /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new UsageError(`${flag}: '${text}' is not a socket mark (1-0xffffffff, decimal or 0x-hex)`);
  return n;
}

const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

export function parseCidrList(flag: string, text: string | undefined): string[] {
  if (text === undefined || text.trim() === '') return [];
  return text.split(',').map((raw) => {
    const cidr = raw.trim();
    const v4 = IPV4_CIDR.exec(cidr);
    if (v4) {
      const octets = v4.slice(1, 5).map(Number);
      const prefix = v4[5] === undefined ? 32 : Number(v4[5]);
      if (octets.some((o) => o > 255) || prefix > 32) throw new UsageError(`${flag}: '${cidr}' is not an IPv4 CIDR`);
      return `${octets.join('.')}/${prefix}`;
    }
    const [addr, len] = cidr.split('/');
    const prefix = len === undefined ? 128 : Number(len);
    if (addr !== undefined && addr.includes(':') && /^[0-9a-fA-F:.]+$/.test(addr) && Number.isInteger(prefix) && prefix >= 0 && prefix <= 128) {
      return `${addr.toLowerCase()}/${prefix}`;
    }
    throw new UsageError(`${flag}: '${cidr}' is not a CIDR (e.g. 10.0.0.0/8 or fd00::/8)`);
  });
}
