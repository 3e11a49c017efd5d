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

  close(): void {
    clearInterval(this.timer);
  }
}
