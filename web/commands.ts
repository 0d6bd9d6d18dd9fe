// What the page shows besides the cards: GetPerson as a GET URL, and the
// terminal commands that make the bidi GetPeople call a browser cannot make.

/** GetPerson as a Connect GET URL, byte for byte what connect-web fetches with `useHttpGet`. */
export function getPersonUrl(origin: string, name: string): string {
  return `${origin}/RouteGuide/GetPerson?connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ name }))}`;
}

/** The tutorial's client: GetPerson for the first name, then GetPeople (gRPC, HTTP/2) for all of them. */
export function clientCommand(origin: string, names: string[]): string {
  return ["npm run client -- --url", shellQuote(origin), ...names.map(shellQuote)].join(" ");
}

/**
 * GetPeople with curl: Connect JSON over HTTP/2, each name framed by the
 * 5-byte envelope (flags, big-endian length). The replies are framed the same
 * way, hence `--output -` (curl won't print binary to a terminal otherwise).
 */
export function curlCommand(origin: string, names: string[]): string {
  const frames = names.map((name) => envelope(JSON.stringify({ name }))).join("");
  // Over TLS, ALPN negotiates HTTP/2; plain text needs prior knowledge.
  const http2 = origin.startsWith("https:") ? "--http2" : "--http2-prior-knowledge";
  return (
    `printf '${frames}' | curl -sS ${http2} -H 'content-type: application/connect+json' ` +
    `--data-binary @- --output - ${shellQuote(`${origin}/RouteGuide/GetPeople`)}`
  );
}

/** A message in a printf format inside single quotes: printable ASCII as is, every other byte as a 3-digit octal escape (POSIX printf). */
function envelope(json: string): string {
  const data = new TextEncoder().encode(json);
  const n = data.length;
  const bytes = [0, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255, ...data];
  return bytes
    .map((b) => {
      const c = String.fromCharCode(b);
      if (c === "%") return "%%";
      if (c === "\\") return "\\\\";
      if (b < 0x20 || b > 0x7e || c === "'") return `\\${b.toString(8).padStart(3, "0")}`;
      return c;
    })
    .join("");
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
