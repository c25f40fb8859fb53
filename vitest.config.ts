import { defineConfig } from 'vitest/config';

// Three projects: unit tests need nothing but Node; integration tests start a real
// kube-apiserver + etcd; e2e tests start real registries and a real containerd.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/integration/**', 'test/e2e/**'],
          // Test files share their workers' module cache: cdk8s and the Kubernetes client load
          // once per worker, not once per file. Tests restore what they stub.
          isolate: false,
          // Not a speed target: a margin for a 2-core machine that is also running the
          // integration and e2e projects (npm test runs all three at once).
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 1_800_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/e2e/global-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 1_800_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
