// `sidewall policy check` accepts a whole sidecar config as a rules document: the keys it lets
// through must be exactly the config's own.
import { describe, expect, it } from 'vitest';
import { TOP_KEYS } from '../../../src/config/load.js';
import { RULE_DOCUMENT_KEYS } from '../../../src/policy/source.js';

describe('sidecar config keys', () => {
  it('are the keys a rules document may carry', () => {
    expect([...RULE_DOCUMENT_KEYS].sort()).toEqual([...TOP_KEYS].sort());
  });
});
