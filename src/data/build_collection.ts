// `npm run data:build [dir]`: builds the bundled default collection (collection.ts) into dir
// (default data/brown), unless a complete one (manifest.json written last) is already there.
import * as fs from 'fs';
import * as path from 'path';

import { DEFAULT_COLLECTION, buildCollection, writeCollection } from './collection';

export const DEFAULT_COLLECTION_DIR = path.join(__dirname, '..', '..', 'data', 'brown');

/** The default collection's directory, built on first use. */
export async function ensureDefaultCollection(dir = DEFAULT_COLLECTION_DIR): Promise<string> {
  const manifest = path.join(dir, 'manifest.json');
  if (fs.existsSync(manifest)) {
    const { options } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
    if (JSON.stringify(options) === JSON.stringify(DEFAULT_COLLECTION)) return dir;
  }
  await writeCollection(dir, buildCollection(DEFAULT_COLLECTION));
  return dir;
}

if (require.main === module) {
  ensureDefaultCollection(process.argv[2] ?? DEFAULT_COLLECTION_DIR).then(
    (dir) => console.log(`collection ready in ${dir}: ${fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')}`),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
