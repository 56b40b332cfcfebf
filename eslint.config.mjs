// ESLint: the recommended JS and typescript-eslint sets (syntax only, no type information: fast),
// with eslint-config-prettier last so no rule disputes the formatter's layout.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores([
    'dist/',
    'build/',
    'build-*/',
    'node_modules/',
    'data/',
    'runs/',
    'scratch/',
    '.gpu/',
    'bench/results/',
  ]),
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, globals: globals.node },
    rules: {
      // `_name` marks a deliberately unused binding, e.g. a field dropped by `{ output: _output, ...rest }`.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // `let [lo, hi] = ...` where only one name is reassigned stays one `let`.
      'prefer-const': ['error', { destructuring: 'all' }],
    },
  },
  {
    // The bench, test-helper and runner scripts are plain CommonJS: require is their import.
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['tests/**/*.ts'],
    languageOptions: { globals: globals.jest },
  },
  {
    // tfjs-core's own specs run under jasmine (tests/gpu/runner.js defines its own describe/test/expect).
    files: ['tests/tfjs_core/**/*.js'],
    languageOptions: { globals: globals.jasmine },
  },
  prettier,
);
