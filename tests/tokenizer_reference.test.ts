// Our tokenizers' ids against independent implementations of the published algorithms
// (tests/reference/tokenizers_reference.py, standard-library Python): BERT's BasicTokenizer +
// WordpieceTokenizer as transformers' tokenization_bert.py, through BertTokenizer (a vocab.txt's
// tokenizer) and loadHuggingFaceTokenizer; SentencePiece Unigram (Viterbi over the pieces' scores,
// the Metaspace pre-tokenizer) through HfTokenizer on a tokenizer.json as XLM-R's. On tricky text:
// accents, CJK, control and zero-width characters, emoji, words of 100+ characters, special tokens
// inside text, and pairs truncated longest first. The vocabularies are written here. Skipped when
// there is no python3.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { BertTokenizer, HfTokenizer, ROBERTA_PAIR_TOKENS, type PairTokenizer } from '../src/data';
import { loadHuggingFaceTokenizer } from '../src/models';
import { xlmrUnigramTokenizerJson } from './helpers/hub_files';

const PYTHON = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import unicodedata']).status === 0);
const REFERENCE = path.join(__dirname, 'reference', 'tokenizers_reference.py');
const check = PYTHON ? it : it.skip;
const why = PYTHON ? '' : ' [SKIPPED: no python3]';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-tokenizer-reference-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface ReferenceOut {
  ids: number[][];
  pairs: Array<{ input_ids: number[]; token_type_ids: number[]; attention_mask: number[] }>;
}
function reference(spec: object): ReferenceOut {
  const r = spawnSync(PYTHON!, [REFERENCE], { input: JSON.stringify(spec), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tokenizers_reference.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const letters = 'abcdefghijklmnopqrstuvwxyz'.split('');
const WORDPIECE_VOCAB = [
  '[PAD]',
  '[UNK]',
  '[CLS]',
  '[SEP]',
  '[MASK]',
  ...['the', 'hello', 'world', 'cafe', 'café', 'Café', 'naive', 'naïve', 'uber', 'über', 'Über', 'un', 'cat'],
  ...['##aff', '##able', '##é', 'The', 'Hello', 'I', 'ı', 'İ', 'i̇'],
  ...['中', '文', '国', '😀', '##😀', '👍', '❤', 'ς', 'σ', 'ο', 'δ', 'Σ', 'Ο', 'Δ', '##ς', '##σ', '##ο', '##δ'],
  ...['.', ',', '!', '?', "'", '-', '(', ')', '«', '»', '¿', '…', '—', '[', ']', '$', '^', '`', '~'],
  ...letters,
  ...letters.map((c) => `##${c}`),
  ...['é', 'ü', 'ﬁ', '##ﬁ', '##ü'],
];

const TRICKY = [
  'Hello, World! The café is naïve.',
  'ÜBER Résumé façade Über über',
  'e\u0301 cafe\u0301 ﬁne İstanbul ıi', // decomposed accents, a ligature, Turkish dotted / dotless i
  '中文 and 中文字 the中国x カタカナ 한국어', // CJK ideographs split; kana and hangul are not ideographs
  'zero\u200bwidth\u200djoiner\ufeffbom soft\u00adhyphen \u2060wj', // Cf characters vanish
  'ctrl\u0000null\u0007bell\ttab\nnewline\r\u000bvt\u000cff \u0085nel \u2028ls \u00a0nbsp \u3000ideo \ufffd',
  'I ❤ 😀😀 cats 👍🏽 😀x', // emoji (surrogate pairs in UTF-16), a skin-tone modifier
  `${'a'.repeat(100)} ${'a'.repeat(101)} ${'😀'.repeat(60)} ${'é'.repeat(99)}x`, // max_input_chars_per_word 100
  'hello [SEP] world [CLS]x[MASK] [sep] [UNK]', // special tokens inside text (exact case only)
  "don't stop—now… (ok) «quote» ¿que? $5^2`~",
  'ΟΔΟΣ οδος ΣΟΣ', // Greek capital sigma, final and not
  '',
  '   \t\n ',
];
const PAIRS: Array<[string, string, number]> = [
  [TRICKY[0], TRICKY[1], 16], // both long: longest first
  ['hello', TRICKY[6], 10], // a short query keeps all its tokens
  ['the a the a the', 'cat cat cat cat cat', 10], // a tie: 5 + 5 into 7, the second loses the odd token
  [TRICKY[3], 'the', 8],
  ['', TRICKY[8], 12],
  [TRICKY[7], TRICKY[2], 64],
];

const VARIANTS: Array<[string, { lowercase: boolean; strip_accents: boolean | null; chinese_chars: boolean }]> = [
  ['uncased', { lowercase: true, strip_accents: null, chinese_chars: true }],
  ['cased', { lowercase: false, strip_accents: null, chinese_chars: true }],
  ['uncased, accents kept', { lowercase: true, strip_accents: false, chinese_chars: true }],
  ['cased, accents stripped', { lowercase: false, strip_accents: true, chinese_chars: true }],
  ['uncased, CJK not split', { lowercase: true, strip_accents: null, chinese_chars: false }],
];

function pairsOf(tokenizer: PairTokenizer) {
  return PAIRS.map(([a, b, max]) => {
    const e = tokenizer.encodePair(a, b, max);
    return {
      input_ids: Array.from(e.inputIds),
      token_type_ids: Array.from(e.tokenTypeIds),
      attention_mask: Array.from(e.attentionMask),
    };
  });
}

/** The texts whose ids differ, with both sides, for a readable failure. */
function differences(ours: number[][], theirs: number[][], texts: string[]) {
  return texts
    .map((text, i) => ({ text: JSON.stringify(text), ours: ours[i], reference: theirs[i] }))
    .filter((_, i) => JSON.stringify(ours[i]) !== JSON.stringify(theirs[i]));
}

describe("BERT WordPiece against transformers' BasicTokenizer + WordpieceTokenizer algorithm", () => {
  const vocab = new Map(WORDPIECE_VOCAB.map((t, i) => [t, i]));
  expect(vocab.size).toBe(WORDPIECE_VOCAB.length); // no token twice

  (PYTHON ? it.each : it.skip.each)(VARIANTS)(`%s: ids of tricky text and truncated pairs${why}`, (_, options) => {
    const theirs = reference({ kind: 'wordpiece', vocab: WORDPIECE_VOCAB, ...options, texts: TRICKY, pairs: PAIRS });
    const ours = new BertTokenizer(vocab, {
      lowercase: options.lowercase,
      stripAccents: options.strip_accents,
      chineseChars: options.chinese_chars,
    });
    expect(
      differences(
        TRICKY.map((t) => ours.ids(t)),
        theirs.ids,
        TRICKY,
      ),
    ).toEqual([]);
    expect(pairsOf(ours)).toEqual(theirs.pairs);
    // the texts reach the hard cases: [UNK]s, specials kept whole, CJK split
    const hard = [1, 2, 3, 4, ...(options.chinese_chars ? [vocab.get('中')!] : [])];
    expect(theirs.ids.flat()).toEqual(expect.arrayContaining(hard));
  });

  check(`the vocab.txt path (loadHuggingFaceTokenizer with tokenizer_config.json) gives the same ids${why}`, () => {
    const dir = path.join(tmp, 'cased');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'vocab.txt'), `${WORDPIECE_VOCAB.join('\n')}\n`);
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false }));
    const ours = loadHuggingFaceTokenizer(dir).tokenizer;
    const theirs = reference({
      kind: 'wordpiece',
      vocab: WORDPIECE_VOCAB,
      lowercase: false,
      texts: TRICKY,
      pairs: PAIRS,
    });
    expect(
      differences(
        TRICKY.map((t) => ours.ids(t)),
        theirs.ids,
        TRICKY,
      ),
    ).toEqual([]);
    expect(pairsOf(ours)).toEqual(theirs.pairs);
  });
});

// Scores chosen so that no two segmentations of the test words tie (Viterbi's choice is then unique).
const UNIGRAM_PIECES: Array<[string, number]> = [
  ['<s>', 0],
  ['<pad>', 0],
  ['</s>', 0],
  ['<unk>', 0],
  ['▁', -3.11],
  ['▁the', -2.03],
  ['▁a', -2.57],
  ['▁hello', -4.21],
  ['▁hell', -5.37],
  ['o', -3.93],
  ['▁world', -4.49],
  ['▁wor', -5.61],
  ['ld', -4.77],
  ['▁caf', -6.13],
  ['é', -5.29],
  ['▁café', -9.9],
  ['▁un', -4.53],
  ['aff', -7.07],
  ['able', -6.19],
  ['▁unaff', -10.83],
  ['▁cat', -5.01],
  ['▁cats', -8.77],
  ['s', -3.47],
  ['▁中文', -6.67],
  ['中', -7.31],
  ['文', -7.43],
  ['😀', -6.91],
  ['▁😀', -8.03],
  ...letters.filter((c) => c !== 'o' && c !== 's').map((c, i): [string, number] => [c, -8.1 - i / 97]),
  ['<mask>', 0],
];
const UNIGRAM_TEXTS = [
  'hello world',
  '  hello   world  ', // runs of spaces collapse (the normalizer), a trailing one becomes ▁
  'café cafe caf\u00e9s', // the two segmentations of café compete
  'the cats unaffable unaff',
  '中文 中文中 中',
  '😀 emoji 😀😀 x😀',
  'xyz QQQ ÿ\tb', // unknown characters fuse into one <unk> per run
  'hello</s>world <s>start', // special tokens inside text
  'hello <mask> world', // <mask> takes the space before it (lstrip)
  'ΟΔΟΣ',
  '',
];
const UNIGRAM_PAIRS: Array<[string, string, number]> = [
  ['hello world', 'the cats unaffable unaff', 10],
  ['the the the the the', 'cat cat cat cat cat', 11], // a tie: 5 + 5 into 7
  ['', 'hello', 8],
];

describe('SentencePiece Unigram (Viterbi, Metaspace) against an independent implementation', () => {
  check(`ids of tricky text and truncated RoBERTa-layout pairs${why}`, () => {
    const json = xlmrUnigramTokenizerJson(UNIGRAM_PIECES);
    const ours = new HfTokenizer(json, ROBERTA_PAIR_TOKENS);
    const theirs = reference({ kind: 'unigram', tokenizer: json, texts: UNIGRAM_TEXTS, pairs: UNIGRAM_PAIRS });
    expect(
      differences(
        UNIGRAM_TEXTS.map((t) => ours.ids(t)),
        theirs.ids,
        UNIGRAM_TEXTS,
      ),
    ).toEqual([]);
    expect(
      UNIGRAM_PAIRS.map(([a, b, max]) => {
        const e = ours.encodePair(a, b, max);
        return {
          input_ids: Array.from(e.inputIds),
          token_type_ids: Array.from(e.tokenTypeIds),
          attention_mask: Array.from(e.attentionMask),
        };
      }),
    ).toEqual(theirs.pairs);
    // the hard cases are reached: <unk>, a special token, a piece that beats its parts
    const flat = theirs.ids.flat();
    const id = (piece: string) => UNIGRAM_PIECES.findIndex(([p]) => p === piece);
    expect(flat).toEqual(expect.arrayContaining([id('<unk>'), id('</s>'), id('<s>'), id('<mask>'), id('▁café')]));
  });
});
