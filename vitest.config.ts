import { defineConfig } from 'vitest/config';

// Integration tests build real volume groups on loop devices; each file makes its
// own uniquely named VG, so files may run in parallel, but lvm calls are slow on
// a loaded machine, hence the generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'journal/test/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default', './test/summaryReporter.ts'],
  },
});
