// `sidewall init` against a real kernel: atomic install, idempotency, cleanup of only our rules,
// both netfilter back ends, and iptables' own message on refusal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology } from '../harness/netns.js';
import { runInit } from '../harness/sidecar.js';

const topo = new Topology({ name: 'it', subnet: 12 });
// As the init container runs it (from the image with the patch's user and capabilities, or from the tree).
const init = (args: string[]) => runInit(topo, args);

beforeAll(() => topo.create());
afterAll(() => topo.destroy());

describe('sidewall init', () => {
  it('prints the rules without touching the kernel on --dry-run', () => {
    const r = init(['--dry-run', '--exclude-outbound-cidrs', '169.254.169.254/32,fd00::/8']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('-A SIDEWALL_REDIRECT -p tcp -j REDIRECT --to-ports 15001');
    expect(r.stdout).toContain('-A SIDEWALL_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006');
    expect(r.stdout).toContain('-A SIDEWALL_OUTPUT -m mark --mark 0x539 -m owner --uid-owner 1337 -j RETURN');
    expect(r.stdout).not.toContain('--gid-owner');
    expect(r.stdout).toContain('-A SIDEWALL_LISTEN -m socket --nowildcard --restore-skmark -m mark --mark 0x539 -j RETURN');
    expect(r.stdout).toContain('-A SIDEWALL_OUTPUT -d 169.254.169.254/32 -j RETURN');
    expect(r.stdout).toContain('-A SIDEWALL_OUTPUT -d fd00::/8 -j RETURN');
    expect(topo.iptablesSave(topo.podNs)).not.toContain('SIDEWALL');
  });

  it('installs, then a second run changes nothing, for IPv4 and IPv6', () => {
    // Someone else's rule in the same table must survive everything we do.
    expect(topo.exec(topo.podNs, 'iptables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '9', '-j', 'RETURN']).status).toBe(0);
    expect(init(['--exclude-inbound-ports', '22']).status).toBe(0);
    const first4 = topo.iptablesSave(topo.podNs, 4);
    const first6 = topo.iptablesSave(topo.podNs, 6);
    expect(first4).toContain('-A PREROUTING -p tcp -j SIDEWALL_INBOUND');
    expect(first4).toContain('-A SIDEWALL_INBOUND -p tcp -m tcp --dport 22 -j RETURN');
    expect(first6).toContain('-A OUTPUT -p tcp -j SIDEWALL_OUTPUT');
    expect(init(['--exclude-inbound-ports', '22']).status).toBe(0);
    expect(topo.iptablesSave(topo.podNs, 4)).toBe(first4);
    expect(topo.iptablesSave(topo.podNs, 6)).toBe(first6);
  });

  it('applies changed flags on a rerun, still without duplicating the jumps', () => {
    expect(init(['--exclude-inbound-ports', '23', '--redirect-dns']).status).toBe(0);
    const rules = topo.iptablesSave(topo.podNs);
    expect(rules).toContain('--dport 23 -j RETURN');
    expect(rules).not.toContain('--dport 22 -j RETURN');
    expect(rules).toContain('-j REDIRECT --to-ports 15053');
    expect(rules.split('\n').filter((l) => l === '-A OUTPUT -p tcp -j SIDEWALL_OUTPUT')).toHaveLength(1);
    expect(init([]).status).toBe(0);
    expect(topo.iptablesSave(topo.podNs)).not.toContain('15053');
  });

  it('removes only what it added on --cleanup, and a second cleanup is a no-op', () => {
    expect(init(['--cleanup']).status).toBe(0);
    for (const family of [4, 6] as const) {
      const rules = topo.iptablesSave(topo.podNs, family);
      expect(rules).not.toContain('SIDEWALL');
    }
    expect(topo.iptablesSave(topo.podNs, 4)).toContain('-A OUTPUT -p tcp -m tcp --dport 9 -j RETURN');
    const again = init(['--cleanup']);
    expect(again.status).toBe(0);
    expect(again.stderr).toContain('nothing of ours');
  });

  it('writes into the legacy back end when asked, and auto-detection then follows it', () => {
    expect(init(['--backend', 'legacy']).status).toBe(0);
    expect(topo.exec(topo.podNs, 'iptables-legacy-save', ['-t', 'nat']).stdout).toContain('SIDEWALL_OUTPUT');
    expect(topo.exec(topo.podNs, 'iptables-nft-save', ['-t', 'nat']).stdout).not.toContain('SIDEWALL_OUTPUT');
    expect(init(['--cleanup', '--backend', 'legacy']).status).toBe(0);
    // Both back ends empty of ours again; the nft table still has the foreign rule, so auto → nft.
    const r = init([]);
    expect(r.stderr).toContain('(nft,');
    expect(init(['--cleanup']).status).toBe(0);
  });

  it("fails with iptables' own message when the kernel refuses, and leaves no partial state", () => {
    const r = init(['--exclude-outbound-cidrs', 'fd00:::1/64']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ip6tables-(nft|legacy)-restore --noflush --test failed \(exit \d+\): .+/);
    // Every family is checked before any is committed: IPv4 was not half-installed either.
    expect(topo.iptablesSave(topo.podNs, 4)).not.toContain('SIDEWALL');
    expect(init([]).status).toBe(0);
    expect(topo.iptablesSave(topo.podNs, 6)).toContain('SIDEWALL_OUTPUT');
  });

  it('guards the listener ports in the filter table: idempotent, follows changed ports, cleaned up', () => {
    const save = (family: 4 | 6) => topo.exec(topo.podNs, family === 4 ? 'iptables-save' : 'ip6tables-save', ['-t', 'filter']).stdout.split('\n').filter((l) => l.startsWith('-A '));
    // The listener guard's rules; the non-TCP guard's SIDEWALL_SEAL_KEEP (checked below) shares the table.
    const filter = (family: 4 | 6) => save(family).filter((l) => !l.includes('SIDEWALL_SEAL_'));
    expect(init([]).status).toBe(0);
    for (const family of [4, 6] as const) {
      expect(save(family).filter((l) => l.includes('SIDEWALL_SEAL_'))).toEqual([
        '-A INPUT -j SIDEWALL_SEAL_KEEP',
        '-A OUTPUT -j SIDEWALL_SEAL_KEEP',
        '-A SIDEWALL_SEAL_KEEP -m mark --mark 0x100000/0x100000 -j CONNMARK --set-xmark 0x100000/0x100000',
      ]);
    }
    for (const family of [4, 6] as const) {
      expect(filter(family)).toEqual([
        '-A INPUT -p tcp -m multiport --dports 15000,15001,15006,15053 -m conntrack --ctstate NEW -j SIDEWALL_LISTEN',
        '-A INPUT -p udp -m udp --dport 15053 -m conntrack --ctstate NEW -j SIDEWALL_LISTEN',
        '-A SIDEWALL_LISTEN -j MARK --set-xmark 0x80000000/0x80000000',
      '-A SIDEWALL_LISTEN -m socket --nowildcard --restore-skmark -m mark --mark 0x539 -j RETURN',
      '-A SIDEWALL_LISTEN -m socket --nowildcard -m mark --mark 0x80000000/0x80000000 -j RETURN',
        '-A SIDEWALL_LISTEN -j DROP',
      ]);
    }
    expect(init([]).status).toBe(0);
    expect(filter(4)).toHaveLength(6);
    // Another inbound port and mark: the old jump goes, the new one comes, in the same transaction.
    expect(init(['--inbound-port', '15007', '--proxy-mark', '0x10']).status).toBe(0);
    expect(filter(4)).toEqual([
      '-A INPUT -p udp -m udp --dport 15053 -m conntrack --ctstate NEW -j SIDEWALL_LISTEN',
      '-A INPUT -p tcp -m multiport --dports 15000,15001,15007,15053 -m conntrack --ctstate NEW -j SIDEWALL_LISTEN',
      '-A SIDEWALL_LISTEN -j MARK --set-xmark 0x80000000/0x80000000',
      '-A SIDEWALL_LISTEN -m socket --nowildcard --restore-skmark -m mark --mark 0x10 -j RETURN',
      '-A SIDEWALL_LISTEN -m socket --nowildcard -m mark --mark 0x80000000/0x80000000 -j RETURN',
      '-A SIDEWALL_LISTEN -j DROP',
    ]);
    expect(init(['--cleanup']).status).toBe(0);
    for (const family of [4, 6] as const) expect(save(family).join('\n')).not.toContain('SIDEWALL');
  });

  it('rejects bad flags with a message naming the flag', () => {
    const r = init(['--exclude-inbound-ports', '80,http']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--exclude-inbound-ports: 'http' is not a port");
    const mark = init(['--proxy-mark', '0']);
    expect(mark.status).toBe(2);
    expect(mark.stderr).toContain("--proxy-mark: '0' is not a socket mark");
  });
});
