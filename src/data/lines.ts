// Streaming line reader for the data formats: nothing is read into memory whole (a 3 GB collection
// streams). Files ending in .gz are decompressed on the fly.
import * as fs from 'fs';
import { pipeline, type Readable } from 'stream';
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

/**
 * The non-empty lines of a file, in order. Bytes that are not UTF-8 are an error naming the file and
 * line (a decoder that replaced them would change ids and texts silently); so is a file that cannot
 * be read or a .gz stream that ends early. `onRead` hears each chunk's size in the file's own
 * bytes (compressed for .gz): progress against the file's size.
 */
export async function* readLines(file: string, onRead?: (bytes: number) => void): AsyncGenerator<NumberedLine> {
  const raw = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  if (onRead) raw.on('data', (chunk) => onRead(chunk.length));
  // pipeline (unlike pipe) passes the file's errors (ENOENT, EIO) on to the gunzip stream read below.
  const input: Readable = file.endsWith('.gz') ? pipeline(raw, zlib.createGunzip(), () => undefined) : raw;
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let line = 0;
  let rest: Buffer = Buffer.alloc(0);
  // Lines end at \n, \r\n or a lone \r, as readline splits them.
  function* split(bytes: Buffer): Generator<NumberedLine> {
    let decoded: string;
    try {
      decoded = decoder.decode(bytes);
    } catch {
      throw new DataFormatError(file, line + 1, 'not valid UTF-8 text');
    }
    const parts = decoded.endsWith('\r') ? decoded.slice(0, -1).split('\r') : decoded.split('\r');
    for (const text of parts) {
      line += 1;
      if (text.trim() !== '') yield { text, line };
    }
  }
  try {
    try {
      for await (const chunk of input) {
        let buf = rest.length ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
        for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
          yield* split(buf.subarray(0, nl));
          buf = buf.subarray(nl + 1);
        }
        rest = buf;
      }
    } catch (e) {
      if (e instanceof DataFormatError) throw e;
      throw new Error(`${file}${line > 0 ? `:${line + 1}` : ''}: cannot read: ${(e as Error).message}`, { cause: e });
    }
    if (rest.length) yield* split(rest);
  } finally {
    raw.destroy();
    input.destroy();
  }
}
