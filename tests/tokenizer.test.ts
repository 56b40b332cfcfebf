// The BERT WordPiece tokenizer: bert-base-uncased's vocabulary and ids, normalisation, and the
// [CLS] query [SEP] passage [SEP] pair encoding with longest-first truncation.
import { BertTokenizer, bertBaseUncasedVocab } from '../src/data';

const tok = new BertTokenizer();

describe('vocabulary', () => {
  const vocab = bertBaseUncasedVocab();
  it("is bert-base-uncased's, with its original ids", () => {
    expect(vocab.size).toBe(30522);
    // Ids every bert-base-uncased user knows: specials, and a few common pieces.
    expect([
      vocab.get('[PAD]'),
      vocab.get('[UNK]'),
      vocab.get('[CLS]'),
      vocab.get('[SEP]'),
      vocab.get('[MASK]'),
    ]).toEqual([0, 100, 101, 102, 103]);
    expect(vocab.get('the')).toBe(1996);
    expect(vocab.get('##s')).toBe(2015);
    expect(vocab.get('[unused0]')).toBe(1);
    expect([...vocab.keys()].filter((t) => t.startsWith('##')).length).toBe(5828);
  });
});

describe('WordPiece', () => {
  it('lowercases, strips accents and splits punctuation', () => {
    expect(tok.tokens('Hello, World!')).toEqual(['hello', ',', 'world', '!']);
    expect(tok.ids('Hello, World!')).toEqual([7592, 1010, 2088, 999]);
    expect(tok.tokens('Café')).toEqual(['cafe']);
    expect(tok.tokens("don't")).toEqual(['don', "'", 't']);
  });

  it('splits unknown words greedily into ## pieces and maps unknown characters to [UNK]', () => {
    // Greedy longest-match-first with bert-base-uncased's pieces: 'una' (not 'un': longer, and no
    // '##aff' to follow it, unlike the vocabulary of BERT's README example 'un ##aff ##able').
    expect(tok.tokens('unaffable')).toEqual(['una', '##ffa', '##ble']);
    expect(tok.ids('unaffable')).toEqual([14477, 20961, 3468]);
    expect(tok.ids('☃')).toEqual([100]);
  });

  it('decodes back to the normalised text', () => {
    expect(tok.decode(tok.ids('The quick brown fox.'))).toBe('the quick brown fox.');
  });
});

describe('encodePair', () => {
  it('builds [CLS] q [SEP] p [SEP] with token types, mask and padding', () => {
    const e = tok.encodePair('hello world', 'the dog', 10);
    expect(Array.from(e.inputIds)).toEqual([101, 7592, 2088, 102, 1996, 3899, 102, 0, 0, 0]);
    expect(Array.from(e.tokenTypeIds)).toEqual([0, 0, 0, 0, 1, 1, 1, 0, 0, 0]);
    expect(Array.from(e.attentionMask)).toEqual([1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
  });

  it('truncates the longer segment first', () => {
    const passage = 'the '.repeat(50);
    const e = tok.encodePair('hello world', passage, 16);
    expect(e.queryTokens).toBe(2);
    expect(e.passageTokens).toBe(11);
    expect(e.attentionMask.reduce((a, b) => a + b, 0)).toBe(16);
    expect(e.inputIds[15]).toBe(102);
    const both = tok.encodePair('the '.repeat(20), 'the '.repeat(20), 11);
    expect([both.queryTokens, both.passageTokens]).toEqual([4, 4]);
  });

  it('marks the passage tokens whose WordPiece id occurs among the kept query tokens (term match)', () => {
    // [CLS] the dog [SEP] a dog saw the cat [SEP] [PAD]
    const e = tok.encodePair('the dog', 'a dog saw the cat', 10);
    expect(Array.from(e.termMatchIds)).toEqual([0, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
    // only query tokens kept after truncation count: "cat" is cut from the query
    const cut = tok.encodeIdsPair(tok.ids('dog dog dog cat'), tok.ids('cat dog'), 8);
    expect([cut.queryTokens, cut.passageTokens]).toEqual([3, 2]);
    expect(Array.from(cut.termMatchIds)).toEqual([0, 0, 0, 0, 0, 0, 1, 0]);
    // graded: the match's level from the given function
    const dog = tok.ids('dog')[0];
    const graded = tok.encodeIdsPair(tok.ids('the dog'), tok.ids('a dog saw the cat'), 10, (id) =>
      id === dog ? 4 : 2,
    );
    expect(Array.from(graded.termMatchIds)).toEqual([0, 0, 0, 0, 0, 4, 0, 2, 0, 0]);
  });

  it('rejects a max length that cannot hold the special tokens', () => {
    expect(() => tok.encodePair('a', 'b', 2)).toThrow(/maxLength/);
  });
});
