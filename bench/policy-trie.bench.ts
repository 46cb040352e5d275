// Persistent trie (src/core/trie.ts): insert/find must stay O(depth · log siblings),
// i.e. per-operation cost must not grow linearly with the number of siblings.
// Target: per-op time at 32k siblings within ~4x of the time at 1k siblings (a linear
// copy-the-children implementation would be ~32x).
import { Trie } from "../src/core/trie.js";
import type { Name } from "../src/core/name.js";

// 7919 is prime and no n below is a multiple of it, so the labels are a permutation of 0..n-1.
function perOp(n: number): { insert: number; find: number } {
  const names: Name[] = Array.from({ length: n }, (_, i) => ({ path: ["tenant"], label: `vm${(i * 7919) % n}` }));
  let t = Trie.empty<number>();
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) t = t.insert(names[i]!, i).trie;
  const insert = Number(process.hrtime.bigint() - t0) / n;
  t0 = process.hrtime.bigint();
  let hits = 0;
  for (let rep = 0; rep < 3; rep++) for (let i = 0; i < n; i++) if (t.find(names[i]!) !== undefined) hits++;
  const find = Number(process.hrtime.bigint() - t0) / (3 * n);
  if (hits !== 3 * n) throw new Error("trie lost entries");
  return { insert, find };
}

export async function run(): Promise<void> {
  perOp(2000); // warm-up
  const small = perOp(1000);
  const large = perOp(32000);
  const fmt = (ns: number) => `${(ns / 1000).toFixed(2)} µs`;
  console.log(
    `insert: 1k siblings ${fmt(small.insert)}/op, 32k siblings ${fmt(large.insert)}/op, ratio ${(large.insert / small.insert).toFixed(2)} (target <= 4)`,
  );
  console.log(`find:   1k siblings ${fmt(small.find)}/op, 32k siblings ${fmt(large.find)}/op, ratio ${(large.find / small.find).toFixed(2)} (target <= 4)`);
}
