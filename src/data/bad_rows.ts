// --skip-bad-rows (config data.skipBadRows): a malformed row of a dataset file is either one error
// naming the file, the line and what was expected (the default), or, when the user asks for it,
// skipped and counted per file — never dropped silently: the counts are printed and written into
// the run's result.json.
import { DataFormatError } from './lines';

export class BadRows {
  /** file -> rows skipped */
  readonly counts = new Map<string, number>();
  /** file -> the first skipped row's error (file:line: what was wrong) */
  readonly first = new Map<string, string>();

  constructor(readonly skip: boolean) {}

  /** Counts a DataFormatError when skipping; throws it (and any other error) otherwise. */
  handle(e: unknown): void {
    if (!this.skip || !(e instanceof DataFormatError)) throw e;
    this.counts.set(e.file, (this.counts.get(e.file) ?? 0) + 1);
    if (!this.first.has(e.file)) this.first.set(e.file, e.message);
  }

  /** fn's value, or undefined when it threw a DataFormatError that is skipped. */
  guard<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      this.handle(e);
      return undefined;
    }
  }

  get total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  /** file -> count, for result.json (absent files had none) */
  summary(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  /** One line per file: how many rows were skipped and the first one's error. */
  describe(): string[] {
    return [...this.counts].map(
      ([file, n]) => `--skip-bad-rows: skipped ${n} bad row${n === 1 ? '' : 's'} of ${file} (first: ${this.first.get(file)})`,
    );
  }
}

/** No skipping: every DataFormatError is thrown (the readers' default). */
export const STRICT_ROWS = (): BadRows => new BadRows(false);
