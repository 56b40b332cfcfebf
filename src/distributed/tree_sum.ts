// Sums whose bits do not depend on how many ranks computed the terms. A step's micro-batch
// gradients (the leaves 0..M-1) are added in one fixed binary tree: leaves pair up as aligned blocks
// (0+1, 2+3, then 01+23, ...), and what is left when M is not a power of two is folded from the
// smallest block up. A rank that holds leaves [a, b) adds them into the same tree's nodes, as far as
// they lie inside its range, and sends those nodes (at most 2·log2 M of them); whoever receives
// every rank's nodes, in order, finishes the same tree. So 1 rank, 2 ranks or 4 give the same bits,
// where a plain allreduce (its order chosen by the MPI library, per rank count) would not.

/** A node of the tree: the sum of leaves [start, start + size), size a power of two, start a multiple of it. */
export interface TreeNode<T> {
  start: number;
  size: number;
  value: T;
}

/**
 * Adds leaves, or nodes, in index order: a node is merged with the one before it as soon as the two
 * are siblings. Holds at most log2(M) + 1 nodes.
 */
export class PairwiseTree<T> {
  private readonly stack: TreeNode<T>[] = [];

  /** add(left, right): the sum of two siblings (the caller disposes of the inputs if it must) */
  constructor(private readonly add: (left: T, right: T) => T) {}

  /** The next leaf, at index `index` (one past the last one pushed, unless this is the first). */
  pushLeaf(index: number, value: T): void {
    this.push({ start: index, size: 1, value });
  }

  /** The next node: aligned (start a multiple of size) and starting where the last one ended. */
  push(node: TreeNode<T>): void {
    const { start, size } = node;
    if (!Number.isInteger(size) || size < 1 || (size & (size - 1)) !== 0 || start % size !== 0)
      throw new Error(`PairwiseTree: node [${start}, ${start + size}) is not an aligned power-of-two block`);
    const top = this.stack.at(-1);
    if (top && top.start + top.size !== start)
      throw new Error(
        `PairwiseTree: node at ${start} does not follow the last one, which ends at ${top.start + top.size}`,
      );
    let cur = node;
    for (;;) {
      const prev = this.stack.at(-1);
      // Siblings: equal size, and the left one starts on a boundary of the pair.
      if (!prev || prev.size !== cur.size || prev.start % (2 * cur.size) !== 0) break;
      this.stack.pop();
      cur = { start: prev.start, size: 2 * cur.size, value: this.add(prev.value, cur.value) };
    }
    this.stack.push(cur);
  }

  /** The nodes so far, in order (what a rank sends for its range of leaves). */
  nodes(): TreeNode<T>[] {
    return [...this.stack];
  }

  /** The whole sum: the nodes folded from the last (smallest) to the first. Null when empty. */
  total(): T | null {
    if (this.stack.length === 0) return null;
    let acc = this.stack[this.stack.length - 1].value;
    for (let i = this.stack.length - 2; i >= 0; i--) acc = this.add(this.stack[i].value, acc);
    return acc;
  }
}
