// The `identity` key of the sidecar config: where the controller is, and how the sidecar proves who it is.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/index.js';

function problem(data: unknown): string {
  try {
    parseConfig(data, '/etc/sidewall/sidecar.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error('the config was accepted');
}

describe('identity config', () => {
  it('takes the controller address and resolves the files against the config folder', () => {
    const config = parseConfig({ identity: { controller: 'sidewall-controller.sidewall:15012', tokenFile: 'token', caFile: '/ca/ca.crt' } }, '/etc/sidewall/sidecar.yaml');
    expect(config.identity).toEqual({ controller: 'sidewall-controller.sidewall:15012', tokenFile: '/etc/sidewall/token', caFile: '/ca/ca.crt' });
    expect(parseConfig({ identity: { controller: '[fd00::1]:15012' } }, 'c.yaml').identity).toEqual({ controller: '[fd00::1]:15012' });
    expect(parseConfig({ identity: { controller: 'unix:/run/sidewall/identity.sock' } }, 'c.yaml').identity).toEqual({ controller: 'unix:/run/sidewall/identity.sock' });
  });

  it('is absent unless configured', () => {
    expect(parseConfig({ mode: 'protect' }, 'c.yaml').identity).toBeUndefined();
  });

  it('names the field of each mistake', () => {
    expect(problem({ identity: { controller: 'sidewall-controller' } })).toBe("/etc/sidewall/sidecar.yaml: identity.controller: 'sidewall-controller' is not host:port or unix:/path");
    expect(problem({ identity: {} })).toContain('identity.controller: is required');
    expect(problem({ identity: { controller: 'c:1', token: 'x' } })).toContain('identity.token: unknown key');
    expect(problem({ identity: 'c:1' })).toContain('identity: must be a mapping');
    expect(problem({ identity: { controller: 'c:1', tokenFile: '' } })).toContain('identity.tokenFile: must be a non-empty string');
  });
});
