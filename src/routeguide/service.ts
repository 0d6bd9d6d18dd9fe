import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Person } from "../../gen/person_pb.js";
import type { Name, RouteGuide } from "../../gen/route_guide_pb.js";
import type { Directory } from "./directory.js";

/**
 * RouteGuide's behaviour. Knows nothing of HTTP: only names, people and
 * status codes. What a valid Name is (not empty, not too long) is stated in
 * route_guide.proto and enforced by the server's request validation (src/http/validation.ts).
 */
export function createRouteGuideService(directory: Directory): ServiceImpl<typeof RouteGuide> {
  return {
    getPerson({ name }: Name): Person {
      return personNamed(directory, name);
    },

    async *getPeople(names: AsyncIterable<Name>): AsyncIterable<Person> {
      // The deadline, a cancel and shutdown end this loop: the engine and the request guard fail the input then.
      for await (const { name } of names) {
        // Unknown names are skipped, as in the tutorial.
        const person = directory.get(name);
        if (person !== undefined) yield person;
      }
    },
  };
}

/** GetPerson's answer to one name. */
function personNamed(directory: Directory, name: string): Person {
  const person = directory.get(name);
  if (person === undefined) {
    // The tutorial answered with a fake person called "Not Found"; a real API reports the status.
    throw new ConnectError(`no person named ${quoted(name)}`, Code.NotFound);
  }
  return person;
}

/** Error messages travel in headers (grpc-message): echo at most a short prefix of what the client sent. */
const maxEchoedChars = 100;

function quoted(name: string): string {
  if (name.length <= maxEchoedChars) return JSON.stringify(name);
  return `${JSON.stringify(name.slice(0, maxEchoedChars))}… (${name.length} characters)`;
}

