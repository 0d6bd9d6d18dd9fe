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
