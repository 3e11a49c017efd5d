// The pod's own addresses: a connection from the pod to one of them is intra-pod traffic.
import { networkInterfaces } from 'node:os';

export class LocalAddresses {
  private addresses = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  constructor(refreshMs = 30_000) {
    this.refresh();
    // Pod IPs are fixed for a pod's life, but a test or a CNI may add one after we start.
    this.timer = setInterval(() => this.refresh(), refreshMs).unref();
  }

  refresh(): void {
    const next = new Set<string>();
    for (const list of Object.values(networkInterfaces())) {
      for (const info of list ?? []) next.add(info.address);
    }
    this.addresses = next;
  }

  isLocal(ip: string): boolean {
    if (ip.startsWith('127.') || ip === '::1') return true;
    if (ip.startsWith('::ffff:')) return this.isLocal(ip.slice(7));
    return this.addresses.has(ip);
  }

  all(): string[] {
    return [...this.addresses];
  }

  /** The pod's first non-loopback IPv4 address, for the flow records' `pod` field. */
  primary(): string | undefined {
    for (const list of Object.values(networkInterfaces())) {
      for (const info of list ?? []) if (!info.internal && info.family === 'IPv4') return info.address;
    }
    return undefined;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
