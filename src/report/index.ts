// Run reports: pure data -> report.json / .md / .html (report.ts), written by suites and the CLI.
export * from './report';
