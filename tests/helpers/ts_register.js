// `node -r ./tests/helpers/ts_register.js script.ts`: runs TypeScript sources directly (each file
// transpiled to CommonJS by esbuild, a devDependency, on require), so a test can start a child
// process on the current src/ without a build step.
const fs = require('fs');
const { transformSync } = require('esbuild');

require.extensions['.ts'] = (module, filename) => {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
    loader: 'ts',
    format: 'cjs',
    target: 'node20',
    sourcefile: filename,
    sourcemap: 'inline',
  });
  module._compile(code, filename);
};
