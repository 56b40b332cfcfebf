// What "the same code" means when ranks start: the package's version and a hash of its compiled
// JavaScript. Ranks built from different commits (or a rank whose machine holds a stale build) would
// take different steps without a word; they stop at start. The addon is left out: each machine
// builds it for its own CPU (-march=native), and ranks whose kernels differ in the last bits still
// apply the same, exchanged update (only the equality with one process's bits needs one build).
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
let cached: string | null = null;

function walk(dir: string, out: string[]): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const f = path.join(dir, e.name);
    if (e.isDirectory()) walk(f, out);
    else if (e.name.endsWith('.js')) out.push(f);
  }
}

/** The package version, then a sha256 over dist/**.js (computed once). */
export function codeFingerprint(): string {
  if (cached) return cached;
  const hash = createHash('sha256');
  const files: string[] = [];
  walk(path.join(PACKAGE_ROOT, 'dist'), files);
  for (const f of files) hash.update(`${path.relative(PACKAGE_ROOT, f)}\0`).update(fs.readFileSync(f));
  const { version } = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
    version: string;
  };
  cached = `${version} ${hash.digest('hex')}`;
  return cached;
}
