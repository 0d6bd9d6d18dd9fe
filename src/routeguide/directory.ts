import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { PersonSchema, type Person } from "../../gen/person_pb.js";

/** The tutorial's Alice and Bob, used when no --data file is given. */
export const defaultDataFile = fileURLToPath(new URL("../../data/people.json", import.meta.url));

/** The people the service knows, by name. Immutable once loaded. */
export class Directory {
  readonly #people: ReadonlyMap<string, Person>;

  constructor(people: Iterable<Person>) {
    const byName = new Map<string, Person>();
    for (const person of people) {
      if (person.name === "") throw new Error("a person must have a name");
      if (byName.has(person.name)) throw new Error(`duplicate name "${person.name}"`);
      // Frozen: the engine keeps the encoding of a message that cannot change (src/engine/engine.ts).
      byName.set(person.name, deepFreeze(person));
    }
    this.#people = byName;
  }

  get(name: string): Person | undefined {
    return this.#people.get(name);
  }

  get size(): number {
    return this.#people.size;
  }

  names(): string[] {
    return [...this.#people.keys()];
  }
}

/**
 * Reads a JSON array of Person records in protobuf JSON form. Any bad record
 * rejects the whole file, with a message naming the file and the record, so
 * the server never starts half-loaded.
 */
export async function loadDirectory(file: string = defaultDataFile): Promise<Directory> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new DataFileError(file, `cannot read: ${(err as Error).message}`);
  }
  let records: unknown;
  try {
    records = JSON.parse(text);
  } catch (err) {
    throw new DataFileError(file, `not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(records)) {
    throw new DataFileError(file, "expected a JSON array of Person records");
  }
  const people: Person[] = [];
  const seen = new Set<string>();
  records.forEach((record: unknown, index) => {
    const where = `record ${index + 1}` + (hasName(record) ? ` ("${record.name}")` : "");
    let person: Person;
    try {
      // Unknown fields and wrong types are errors, not silently dropped.
      person = fromJson(PersonSchema, record as JsonValue);
    } catch (err) {
      throw new DataFileError(file, `${where}: ${(err as Error).message}`);
    }
    // The rules in person.proto (buf.validate options), as the server checks requests.
    const result = validator.validate(PersonSchema, person);
    if (result.kind !== "valid") {
      const broken = result.kind === "invalid" ? result.violations.map(String).join("; ") : result.error.message;
      throw new DataFileError(file, `${where}: ${broken}`);
    }
    if (seen.has(person.name)) throw new DataFileError(file, `${where}: duplicate name "${person.name}"`);
    seen.add(person.name);
    people.push(person);
  });
  return new Directory(people);
}

const validator = createValidator();

export class DataFileError extends Error {
  constructor(readonly file: string, detail: string) {
    super(`data file ${file}: ${detail}`);
    this.name = "DataFileError";
  }
}

function hasName(record: unknown): record is { name: string } {
  return typeof record === "object" && record !== null && typeof (record as { name?: unknown }).name === "string";
}

/** Freezes a message and the objects and arrays it holds. */
function deepFreeze<T extends object>(value: T): T {
  for (const field of Object.values(value)) if (typeof field === "object" && field !== null && !(field instanceof Uint8Array)) deepFreeze(field);
  return Object.freeze(value);
}
