import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import {
  ErrorInfoSchema,
  type ExerciseRequest,
  type ExerciseResponse,
  ExerciseResponseSchema,
  ExerciseService,
  type Failure,
} from "../../gen/exercise/v1/exercise_pb.js";

/**
 * The test-only ExerciseService (test/proto/exercise/v1/exercise.proto):
 * every request says how the handler behaves, so one service covers what a
 * protocol path must carry between a handler and the wire. Written as any
 * team would write a service, through HandlerContext only.
 */
export const exerciseService: ServiceImpl<typeof ExerciseService> = {
  async unary(request, ctx) {
    await begin(request, ctx);
    if (request.failure) throw failure(request.failure);
    return reply(request, 0, 1);
  },

  async query(request, ctx) {
    await begin(request, ctx);
    if (request.failure) throw failure(request.failure);
    return reply(request, 0, 1);
  },

  async *serverStream(request, ctx) {
    await begin(request, ctx);
    for (let index = 0; index < request.responses; index++) {
      failIfDue(request, index);
      yield reply(request, index, 1);
    }
    failIfDue(request, request.responses);
  },

  async clientStream(requests, ctx) {
    let first: ExerciseRequest | undefined;
    let received = 0;
    for await (const request of requests) {
      received++;
      if (first === undefined) {
        first = request;
        await begin(request, ctx);
      }
      // The handler only learns of the failure from the first request, so it comes after one at the earliest.
      if (first.failure && received >= Math.max(first.failure.after, 1)) throw failure(first.failure);
    }
    if (first === undefined) return create(ExerciseResponseSchema, {});
    return reply(first, 0, received);
  },

  async *bidi(requests, ctx) {
    let first: ExerciseRequest | undefined;
    let sent = 0;
    let received = 0;
    for await (const request of requests) {
      received++;
      if (first === undefined) {
        first = request;
        await begin(request, ctx);
      } else if (request.delayMs > 0) {
        await sleep(request.delayMs, ctx.signal);
      }
      for (let i = 0; i < request.responses; i++) {
        failIfDue(first, sent);
        yield reply(request, sent++, received);
      }
    }
    if (first !== undefined) failIfDue(first, sent);
  },
};

/** Registers the service, for StartOptions.services. */
export function exerciseRoutes(router: ConnectRouter): void {
  router.service(ExerciseService, exerciseService);
}

/** The request headers named "x-exercise-reject" make this interceptor refuse the call. */
export const rejectHeader = "x-exercise-reject";

/** Refuses calls that carry `rejectHeader`, before the handler runs: what an auth interceptor does. */
export const rejectingInterceptor: Interceptor = (next) => async (req) => {
  if (req.header.has(rejectHeader)) {
    throw new ConnectError(`refused by the interceptor: ${req.header.get(rejectHeader)}`, Code.PermissionDenied);
  }
  return next(req);
};

/** The response header the other interceptor adds, to answers and to errors alike. */
export const interceptedHeader = "x-exercise-intercepted";

/** Adds `interceptedHeader` to every answer, successful or not: what a tracing interceptor does. */
export const headerInterceptor: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    res.header.set(interceptedHeader, req.method.name);
    return res;
  } catch (e) {
    const error = ConnectError.from(e);
    error.metadata.set(interceptedHeader, req.method.name);
    throw error;
  }
};

/** What every method does first: headers, trailers, the delay. */
async function begin(request: ExerciseRequest, ctx: HandlerContext): Promise<void> {
  for (const name of request.echoHeaders) {
    const value = ctx.requestHeader.get(name);
    if (value !== null) ctx.responseHeader.set(`echo-${name}`, value);
  }
  for (const [name, value] of Object.entries(request.responseHeaders)) ctx.responseHeader.set(name, value);
  for (const [name, value] of Object.entries(request.responseTrailers)) ctx.responseTrailer.set(name, value);
  if (request.delayMs > 0) await sleep(request.delayMs, ctx.signal);
}

/** Throws the request's failure once `sent` responses went out. */
function failIfDue(request: ExerciseRequest, sent: number): void {
  if (request.failure && request.failure.after === sent) throw failure(request.failure);
}

function failure({ code, message, details }: Failure): Error {
  if (code === 0) return new Error(message);
  return new ConnectError(message, code as Code, undefined, details.map((value) => ({ desc: ErrorInfoSchema, value })));
}

function reply(request: ExerciseRequest, index: number, received: number): ExerciseResponse {
  return create(ExerciseResponseSchema, { index, received, payload: new Uint8Array(request.payloadBytes).fill(0x61) });
}

/** Waits `ms`, or until `signal` aborts, then throws its reason (deadline, cancellation, shutdown) as Connect would. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(ConnectError.from(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(ConnectError.from(signal.reason));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
