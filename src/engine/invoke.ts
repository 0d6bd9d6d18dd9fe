import { create, type DescMessage, type Message } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type HandlerContext,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { EngineContext } from "./context.js";
import { MessageQueue } from "./message-queue.js";
import type { RoutedMethod } from "./route-table.js";

type AnyFn = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

/** Where a unary call's outcome goes: its output, or what its handler or an interceptor threw. */
export interface UnaryReceiver {
  reply(output: Message): void;
  failed(error: unknown): void;
}
type Impl = (input: unknown, ctx: HandlerContext) => unknown;

/**
 * A check of each request message before the handler sees it, throwing the
 * error to answer (the server's validation, src/http/validation.ts). It runs
 * where its interceptor sits on connect-node's path, innermost: after the
 * router's interceptors, on the message they hand on; for streams, as the
 * handler takes each message.
 */
export type RequestCheck = (desc: DescMessage, message: Message) => void;

/**
 * Calls one method's implementation through the router's interceptors, as
 * connect-es's invokeUnaryImplementation / transformInvokeImplementation do,
 * with the same request and response objects an interceptor sees there. The
 * chain is built once per method, not per call; without interceptors the
 * implementation is called directly, and a synchronous result stays
 * synchronous.
 */
export class Invoker {
  readonly #impl: Impl;
  readonly #input: DescMessage;
  readonly #output: DescMessage;
  readonly #check: RequestCheck | undefined;
  readonly #kind: RoutedMethod["method"]["methodKind"];
  readonly #chain: AnyFn | undefined;

  constructor(readonly routed: RoutedMethod, interceptors: readonly Interceptor[], check: RequestCheck | undefined) {
    this.#impl = routed.spec.impl as Impl;
    this.#input = routed.method.input;
    this.#output = routed.method.output;
    this.#check = check;
    this.#kind = routed.method.methodKind;
    const last: AnyFn = (req) => this.#callImplementation(req);
    // connect-es's applyInterceptors: the first interceptor is the outermost.
    this.#chain = interceptors.length === 0 ? undefined : interceptors.reduceRight<AnyFn>((next, i) => i(next as never) as AnyFn, last);
  }

  /**
   * A unary call: its output, or what the handler or an interceptor threw,
   * goes to `receiver`, synchronously when everything was synchronous. One
   * async step at most, and no closures, per call.
   */
  unary(ctx: EngineContext, input: Message, receiver: UnaryReceiver): void {
    if (this.#chain !== undefined) {
      void this.#unaryChain(this.#chain, ctx, input, receiver);
      return;
    }
    let out: unknown;
    try {
      this.#check?.(this.#input, input);
      out = this.#impl(input, ctx);
    } catch (e) {
      return receiver.failed(e);
    }
    if (isPromise(out)) void this.#settle(out, receiver);
    else receiver.reply(create(this.#output, out as never));
  }

  async #unaryChain(chain: AnyFn, ctx: EngineContext, input: Message, receiver: UnaryReceiver): Promise<void> {
    let res: UnaryResponse | StreamResponse;
    try {
      res = await chain(request(ctx, false, input));
    } catch (e) {
      return receiver.failed(e);
    }
    adoptHeaders(ctx, res);
    receiver.reply(res.message as Message);
  }

  async #settle(out: Promise<unknown>, receiver: UnaryReceiver): Promise<void> {
    let message: Message;
    try {
      message = create(this.#output, (await out) as never);
    } catch (e) {
      return receiver.failed(e);
    }
    receiver.reply(message);
  }

  /**
   * A streaming call: the output messages. The response's trailers an
   * interceptor replaces are taken once the output ends, as connect-es does.
   */
  async stream(ctx: EngineContext, input: AsyncIterable<Message>): Promise<AsyncIterable<Message>> {
    if (this.#chain === undefined) return this.#streamOutput(this.#checked(input), ctx);
    const req = request(ctx, true, input);
    const res = (await this.#chain(req)) as StreamResponse;
    adoptHeaders(ctx, res);
    if (res.trailer === ctx.responseTrailer) return res.message as AsyncIterable<Message>;
    return withTrailersAtEnd(res.message as AsyncIterable<Message>, ctx, res);
  }

  /** The innermost step of the chain: the implementation with the context as the request now has it. */
  #callImplementation(req: UnaryRequest | StreamRequest): Promise<UnaryResponse | StreamResponse> {
    const engineCtx = contextOf(req);
    // Untouched by the interceptors, the request's context is the engine's own; else connect-es's merge.
    const handlerCtx = untouched(engineCtx, req) ? engineCtx : mergeRequest(engineCtx, req);
    if (req.stream) return this.#streamResponse(engineCtx, handlerCtx, this.#checked(req.message as AsyncIterable<Message>));
    let out: unknown;
    try {
      this.#check?.(this.#input, req.message as Message);
      out = this.#impl(req.message, handlerCtx);
    } catch (e) {
      return Promise.reject(e);
    }
    // A synchronous handler's answer needs no async function around it.
    if (isPromise(out)) return this.#unaryResponse(engineCtx, out);
    return Promise.resolve(response(engineCtx, false, create(this.#output, out as never)));
  }

  /** A stream's input with the check on each message: the engine's own queue checks as it hands them out. */
  #checked(input: AsyncIterable<Message>): AsyncIterable<Message> {
    const check = this.#check;
    if (check === undefined) return input;
    if (input instanceof MessageQueue) {
      const desc = this.#input;
      input.checkEach((message: Message) => check(desc, message));
      return input;
    }
    return checkedInput(input, this.#input, check);
  }

  async #unaryResponse(ctx: EngineContext, out: Promise<unknown>): Promise<UnaryResponse | StreamResponse> {
    return response(ctx, false, create(this.#output, (await out) as never));
  }

  async #streamResponse(ctx: EngineContext, handlerCtx: HandlerContext, input: AsyncIterable<Message>): Promise<StreamResponse> {
    return response(ctx, true, await this.#streamOutput(input, handlerCtx)) as StreamResponse;
  }

  async #streamOutput(input: AsyncIterable<Message>, ctx: HandlerContext): Promise<AsyncIterable<Message>> {
    switch (this.#kind) {
      case "server_streaming":
        return new NormalizedOutput(this.#output, this.#impl(await single(input, "server-streaming"), ctx) as AsyncIterable<unknown>);
      case "client_streaming":
        return once(create(this.#output, (await this.#impl(input, ctx)) as never));
      case "bidi_streaming":
        return new NormalizedOutput(this.#output, this.#impl(input, ctx) as AsyncIterable<unknown>);
      default:
        throw new ConnectError(`${this.routed.requestPath} is not a streaming method`, Code.Internal);
    }
  }
}

const kContext = Symbol("engine.context");

/** The engine's context, carried on the request objects it hands to interceptors (and their copies). */
type Tagged = { [kContext]?: EngineContext };

function contextOf(req: UnaryRequest | StreamRequest): EngineContext {
  const ctx = (req as Tagged)[kContext];
  if (ctx === undefined) throw new ConnectError("an interceptor replaced the request without spreading it", Code.Internal);
  return ctx;
}

/**
 * The request an interceptor sees, as connect-es's requestCommon builds it:
 * plain data properties (an object literal with getters costs ~0.6 µs a call
 * here, one with data ~0.03 µs), so copies made by spreading keep them all.
 * The headers fill themselves when first read (LazyHeaders).
 */
function request(ctx: EngineContext, stream: boolean, message: Message | AsyncIterable<Message>): UnaryRequest | StreamRequest {
  return {
    stream,
    method: ctx.method,
    service: ctx.service,
    requestMethod: ctx.requestMethod,
    message,
    url: ctx.url,
    signal: ctx.signal,
    header: ctx.requestHeader,
    contextValues: ctx.values,
    [kContext]: ctx,
  } as unknown as UnaryRequest | StreamRequest;
}

function response(ctx: EngineContext, stream: boolean, message: unknown): UnaryResponse | StreamResponse {
  return {
    stream,
    method: ctx.method,
    service: ctx.service,
    message,
    header: ctx.responseHeader,
    trailer: ctx.responseTrailer,
  } as unknown as UnaryResponse | StreamResponse;
}

/** connect-es's mergeRequest: the handler sees what the interceptors made of the request. */
function mergeRequest(ctx: EngineContext, req: UnaryRequest | StreamRequest): HandlerContext {
  return {
    method: ctx.method,
    service: req.service,
    protocolName: ctx.protocolName,
    requestMethod: ctx.requestMethod,
    url: req.url,
    timeoutMs: () => ctx.timeoutMs(),
    signal: req.signal,
    requestHeader: req.header,
    values: req.contextValues,
    responseHeader: ctx.responseHeader,
    responseTrailer: ctx.responseTrailer,
  };
}

/** Whether the request reached the implementation as the engine made it: then the handler gets the engine's context. */
function untouched(ctx: EngineContext, req: UnaryRequest | StreamRequest): boolean {
  return (
    req.service === ctx.service &&
    req.header === ctx.requestHeader &&
    req.signal === ctx.signal &&
    req.contextValues === ctx.values &&
    req.url === ctx.url
  );
}

/** An interceptor may return other Headers than the context's: connect-es copies them into the response. */
function adoptHeaders(ctx: EngineContext, res: UnaryResponse | StreamResponse): void {
  copyHeaders(res.header, ctx.responseHeader);
  if (!res.stream) copyHeaders(res.trailer, ctx.responseTrailer);
}

function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => to.set(key, value));
}

async function* withTrailersAtEnd(messages: AsyncIterable<Message>, ctx: EngineContext, res: StreamResponse): AsyncIterable<Message> {
  yield* messages;
  copyHeaders(res.trailer, ctx.responseTrailer);
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as Promise<unknown> | undefined)?.then === "function";
}

/** connect-es's ensureSingle, with its messages. */
async function single(input: AsyncIterable<Message>, kind: string): Promise<Message> {
  const it = input[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) throw new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
  const second = await it.next();
  if (second.done !== true) throw new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented);
  return first.value;
}

async function* once(message: Message): AsyncIterable<Message> {
  yield message;
}

/** An input an interceptor replaced, checked as @connectrpc/validate checks a stream: each message as it is read. */
function checkedInput(input: AsyncIterable<Message>, desc: DescMessage, check: RequestCheck): AsyncIterable<Message> {
  return {
    [Symbol.asyncIterator]() {
      const it = input[Symbol.asyncIterator]();
      return {
        async next() {
          const next = await it.next();
          if (next.value) check(desc, next.value);
          return next;
        },
        ...(it.return && { return: (v?: unknown) => it.return!(v) }),
        ...(it.throw && { throw: (e?: unknown) => it.throw!(e) }),
      };
    },
  };
}

/**
 * connect-es's normalizeIterable: handlers may yield partial messages. An
 * interceptor that wraps the output reads it through this; when the output
 * reaches the engine unwrapped, the engine reads the handler's own iterator
 * (takeSource()) and makes each message itself, a promise less per message.
 */
export class NormalizedOutput implements AsyncIterable<Message> {
  #taken = false;

  constructor(
    readonly desc: DescMessage,
    readonly source: AsyncIterable<unknown>,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    this.#taken = true;
    const { desc } = this;
    const it = this.source[Symbol.asyncIterator]();
    const step = (r: IteratorResult<unknown>): IteratorResult<Message> =>
      r.done === true ? (r as IteratorResult<Message>) : { done: false, value: create(desc, r.value as never) };
    return {
      next: () => it.next().then(step),
      ...(it.throw && { throw: (e?: unknown) => it.throw!(e).then(step) }),
      ...(it.return && { return: (v?: unknown) => it.return!(v).then(step) }),
    };
  }

  /** The handler's iterator, for the engine, which makes each message with create(desc, value); once, and only if nobody else read it. */
  takeSource(): AsyncIterator<unknown> | undefined {
    if (this.#taken) return undefined;
    this.#taken = true;
    return this.source[Symbol.asyncIterator]();
  }
}
