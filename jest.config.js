/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tests/tsconfig.json' }] },
  testTimeout: 120000,
  // The native addon and tfjs backends are process-global: run test files one per worker process.
  maxWorkers: 2,
};
