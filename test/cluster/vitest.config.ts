// `npm run test:cluster`: the suites against real Kubernetes programs (and SPIRE) on loopback.
// Kept out of `npm test` (see the root vitest.config.ts). Files run one at a time: each starts
// its own control plane, and two at once on a small CI machine only make both slow.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/cluster/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 300_000,
    globalSetup: ['test/cluster/global-setup.ts'],
  },
});
