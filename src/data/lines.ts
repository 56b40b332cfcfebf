// Streaming line reader for the data formats: nothing is read into memory whole (a 3 GB collection
// streams). Files ending in .gz are decompressed on the fly.
import * as fs from 'fs';
import * as readline from 'readline';
import * as zlib from 'zlib';

/** An input line that does not fit its format; names the file and the 1-based line. */
export class DataFormatError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
    this.name = 'DataFormatError';
  }
}

export interface NumberedLine {
  text: string;
  /** 1-based */
  line: number;
}

/** The non-empty lines of a file, in order. */
export async function* readLines(file: string): AsyncGenerator<NumberedLine> {
  const raw = fs.createReadStream(file);
  const input = file.endsWith('.gz') ? raw.pipe(zlib.createGunzip()) : raw;
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of rl) {
      line += 1;
      if (text.trim() !== '') yield { text, line };
    }
  } finally {
    rl.close();
    raw.destroy();
  }
}
