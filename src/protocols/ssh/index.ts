// SSH (RFC 4253): the identification string, from either side (the server speaks first too);
// decided once on the client's banner, then opaque (encrypted).
import { sessionEnforcer } from '../../enforcement/handshake-enforcer.js';
import type { ProtocolPlugin } from '../plugin.js';
import { detectSsh } from './detect.js';
import { SshParser } from './ssh-parser.js';

export const sshProtocol = {
  name: 'ssh',
  detectClient: detectSsh,
  detectGreeting: detectSsh,
  createParser: () => new SshParser(),
  enforcer: sessionEnforcer((ev) =>
    ev.type === 'ssh.banner' && ev.side === 'client' ? { facts: {}, record: { banner: `SSH-${ev.protoVersion}-${ev.softwareVersion}` } } : null,
  ),
  recordFields: { banner: { type: 'string', description: "The client's identification string (SSH-2.0-...)." } },
} as const satisfies ProtocolPlugin<'ssh'>;
