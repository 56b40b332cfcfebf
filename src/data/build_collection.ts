// `npm run data:build [dir]`: builds the bundled default collection (collection.ts) into dir
// (default data/brown), unless a complete one (manifest.json written last) of the same options and
// construction is already there.
import * as fs from 'fs';
import * as path from 'path';

import { COLLECTION_CONSTRUCTION, DEFAULT_COLLECTION, buildCollection, writeCollection } from './collection';

export const DEFAULT_COLLECTION_DIR = path.join(__dirname, '..', '..', 'data', 'brown');

/** Whether dir holds a complete build (manifest.json is written last) of this code's default collection. */
export function isDefaultCollection(dir: string): boolean {
  const manifest = path.join(dir, 'manifest.json');
  if (!fs.existsSync(manifest)) return false;
  const { options, construction } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  return construction === COLLECTION_CONSTRUCTION && JSON.stringify(options) === JSON.stringify(DEFAULT_COLLECTION);
}

/** The default collection's directory, built on first use (and rebuilt when its construction changed). */
export async function ensureDefaultCollection(dir = DEFAULT_COLLECTION_DIR): Promise<string> {
  if (!isDefaultCollection(dir)) await writeCollection(dir, buildCollection(DEFAULT_COLLECTION));
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
