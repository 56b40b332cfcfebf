// A child process that opens (building as needed) the passage store of a collection file with
// bert-base-uncased's tokenizer: `node -r ./tests/helpers/ts_register.js store_child.ts <collection> <store dir>`.
// The kill tests run it under FUSED_DISTILL_CRASH_AT.
import { openPassageStore } from '../../src/data/passage_store';
import { BertTokenizer } from '../../src/data/tokenizer';

const [collection, dir] = process.argv.slice(2);
openPassageStore({ collection }, { tokenizer: new BertTokenizer(), dir, workers: 0, notice: () => undefined }).then(
  (store) => process.stdout.write(`${store.passages.size}\n`),
  (e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);
