import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Person } from "../../gen/person_pb.js";
import type { Name, RouteGuide } from "../../gen/route_guide_pb.js";
import { abortable } from "../grpc-services/abortable.js";
import type { Directory } from "./directory.js";

/** RouteGuide's behaviour. Knows nothing of HTTP: only names, people and status codes. */
export function createRouteGuideService(directory: Directory): ServiceImpl<typeof RouteGuide> {
  return {
    getPerson({ name }: Name, ctx: HandlerContext): Person {
      // Connect calls a unary method even when its deadline passed (or shutdown came) while the request was arriving.
      if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason);
      return personNamed(directory, name);
    },

    async *getPeople(names: AsyncIterable<Name>, ctx: HandlerContext): AsyncIterable<Person> {
      for await (const { name } of abortable(names, ctx.signal)) {
        const person = personInStream(directory, name);
        if (person !== undefined) yield person;
      }
    },
  };
}

/** GetPerson's answer to one name. */
function personNamed(directory: Directory, name: string): Person {
  if (name === "") {
    throw new ConnectError("name must not be empty", Code.InvalidArgument);
  }
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

/** GetPeople's answer to one name of the stream: unknown names are skipped (undefined), as in the tutorial. */
function personInStream(directory: Directory, name: string): Person | undefined {
  if (name === "") {
    throw new ConnectError("name must not be empty", Code.InvalidArgument);
  }
  return directory.get(name);
}
