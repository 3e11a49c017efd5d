import { defineConfig } from 'vitest/config';

// Unit tests run in parallel; end-to-end tests (network namespaces, iptables) run one file at a
// time because they share the kernel's netfilter state.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
