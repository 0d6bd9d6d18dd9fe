import fc from "fast-check";

/**
 * Up to four random edits of `original` (a byte flipped, the rest cut off, a
 * byte inserted, the whole doubled): valid requests turned malformed, in the
 * ways a broken or hostile client breaks them.
 */
export function mutation(original: Buffer): fc.Arbitrary<Buffer> {
  return fc.array(fc.tuple(fc.constantFrom("flip", "cut", "insert", "dup"), fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }).map(
    (ops) => {
      let b = Buffer.from(original);
      for (const [op, at, byte] of ops) {
        const i = b.length === 0 ? 0 : at % b.length;
        if (op === "flip" && b.length > 0) b[i] = b[i]! ^ (byte || 1);
        else if (op === "cut") b = b.subarray(0, i);
        else if (op === "insert") b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
        else if (op === "dup") b = Buffer.concat([b, b]);
      }
      return b;
    },
  );
}
