/**
 * Remembers what `serialize` made of each object, for the fast paths: the
 * directory's people never change while the server runs (src/routeguide/directory.ts),
 * so each is encoded once per format instead of once per call. Keyed weakly,
 * so a message that is not the directory's own is simply encoded again.
 */
export function cachedSerialization<T extends object, R>(serialize: (message: T) => R): (message: T) => R {
  const cache = new WeakMap<T, R>();
  return (message) => {
    let encoded = cache.get(message);
    if (encoded === undefined) {
      encoded = serialize(message);
      cache.set(message, encoded);
    }
    return encoded;
  };
}
