import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Person } from "../gen/person_pb.js";
import type { Name, RouteGuide } from "../gen/route_guide_pb.js";
import { abortable } from "./abortable.js";
import type { Directory } from "./directory.js";

/** RouteGuide's behaviour. Knows nothing of HTTP: only names, people and status codes. */
export function createRouteGuideService(directory: Directory): ServiceImpl<typeof RouteGuide> {
  return {
    getPerson({ name }: Name): Person {
      if (name === "") {
        throw new ConnectError("name must not be empty", Code.InvalidArgument);
      }
      const person = directory.get(name);
      if (person === undefined) {
        // The tutorial answered with a fake person called "Not Found"; a real API reports the status.
        throw new ConnectError(`no person named ${JSON.stringify(name)}`, Code.NotFound);
      }
      return person;
    },

    async *getPeople(names: AsyncIterable<Name>, ctx: HandlerContext): AsyncIterable<Person> {
      for await (const { name } of abortable(names, ctx.signal)) {
        if (name === "") {
          throw new ConnectError("name must not be empty", Code.InvalidArgument);
        }
        // Unknown names are skipped, as in the tutorial.
        const person = directory.get(name);
        if (person !== undefined) yield person;
      }
    },
  };
}
