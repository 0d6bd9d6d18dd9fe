import type { Compression } from "@connectrpc/connect/protocol";

/**
 * A request header as connect-es's Headers.get() reads it: each value
 * trimmed, repeated ones joined with ", ", the whole trimmed again. Node
 * joins repeated headers into one string without trimming, so error
 * messages that echo a header (an empty timeout sent twice) would differ by a byte.
 */
export function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  if (typeof value === "string") return value.trim();
  return value.map((v) => v.trim()).join(", ").trim();
}

/**
 * Headers built once per codec and response compression (a fixed set: the
 * router's), found by two lookups on objects rather than by a string key
 * built and hashed on every call.
 */
export class CodecMemo<T> {
  readonly #binary = new Map<Compression | null, T>();
  readonly #json = new Map<Compression | null, T>();

  constructor(private readonly build: (binary: boolean, compression: Compression | null) => T) {}

  get(binary: boolean, compression: Compression | null): T {
    const memo = binary ? this.#binary : this.#json;
    let value = memo.get(compression);
    if (value === undefined) memo.set(compression, (value = this.build(binary, compression)));
    return value;
  }
}

/** A request URL's path, without its query. */
export function pathOf(url: string | undefined): string {
  if (url === undefined) return "";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}
