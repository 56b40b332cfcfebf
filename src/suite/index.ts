// Suites: one teacher (cached across suites by its config), several students distilled from it, all
// evaluated on the same queries and compared in one report (suite.ts).
export { SuiteSchema, loadSuite, runSuite, teacherRunDir, deepMerge, slug } from './suite';
export type { Suite, SuiteInput, SuiteOptions, SuiteProgress, SuiteResult } from './suite';
