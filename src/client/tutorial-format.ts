import type { Person } from "../../gen/person_pb.js";

/**
 * The line the tutorial's Python client prints for a person, byte for byte:
 * the gender as its enum number and the hobbies as Python's repr of a list.
 */
export function formatPerson(label: string, person: Person): string {
  const address = person.address;
  return (
    `${label}: ${person.name}, Age: ${person.age}, Gender: ${person.gender}, ` +
    `Hobbies: [${person.hobbies.map(pythonRepr).join(", ")}], ` +
    `Address: ${address?.street ?? ""}, ${address?.city ?? ""}`
  );
}

/** Python 3's repr() of a str: single quotes unless the text has ' and no ", escapes as Python does. */
export function pythonRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
    else if (isNonPrintable(code)) out += escapeCodePoint(code);
    else out += ch;
  }
  return out + quote;
}

/** Approximates Python's str.isprintable() for the categories it rejects (C*, Z* other than space). */
function isNonPrintable(code: number): boolean {
  if (code >= 0x80 && code <= 0xa0) return true; // C1 controls and no-break space
  return /[\p{C}\p{Zl}\p{Zp}\p{Zs}]/u.test(String.fromCodePoint(code)) && code !== 0x20;
}

function escapeCodePoint(code: number): string {
  if (code <= 0xff) return "\\x" + code.toString(16).padStart(2, "0");
  if (code <= 0xffff) return "\\u" + code.toString(16).padStart(4, "0");
  return "\\U" + code.toString(16).padStart(8, "0");
}
