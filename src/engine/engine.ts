import type { DescMethod, Message } from "@bufbuild/protobuf";
import { ConnectError, type ConnectRouterOptions, type Interceptor } from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  createMethodSerializationLookup,
  type MethodSerializationLookup,
  type UniversalHandlerOptions,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import type { Observability } from "../observability/calls.js";
import { envelope } from "./envelopes.js";
import { Invoker, type RequestCheck } from "./invoke.js";
import type { RouteTable, RoutedMethod } from "./route-table.js";

/** One method as the engine serves it: its implementation through the interceptors, its codecs, its encodings. */
export class MethodEntry {
  readonly path: string;
  readonly method: DescMethod;
  readonly invoker: Invoker;
  readonly serialization: MethodSerializationLookup<DescMethod["input"], DescMethod["output"]>;
  /** Marked NO_SIDE_EFFECTS in its proto: Connect GET may call it. */
  readonly idempotent: boolean;
  readonly #encodings = [new WeakMap<object, Uint8Array>(), new WeakMap<object, Uint8Array>()];
  readonly #envelopes = [new WeakMap<object, Uint8Array>(), new WeakMap<object, Uint8Array>()];
  readonly #texts = new WeakMap<object, string>();

  constructor(routed: RoutedMethod, interceptors: readonly Interceptor[], check: RequestCheck | undefined, settings: UniversalHandlerOptions) {
    this.path = routed.requestPath;
    this.method = routed.method;
    this.invoker = new Invoker(routed, interceptors, check);
    this.serialization = createMethodSerializationLookup(routed.method, settings.binaryOptions, settings.jsonOptions, settings);
    this.idempotent = routed.method.idempotency === 1; // MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS
  }

  /**
   * An output message's bytes. A frozen message is the service's statement
   * that it never changes (src/routeguide/directory.ts freezes its people),
   * so its bytes are kept, per codec, for as long as the message lives.
   */
  encode(message: Message, binary: boolean): Uint8Array {
    return kept(this.#encodings[binary ? 1 : 0]!, message, () => this.serialization.getO(binary).serialize(message));
  }

  /**
   * An output message's JSON as a string, from its bytes (encode(message, false)):
   * Node writes a string and the response's head in one buffer. Kept like the bytes for a frozen message.
   */
  jsonText(message: Message, bytes: Uint8Array): string {
    return kept(this.#texts, message, () => utf8.decode(bytes));
  }

  /** An output message as an uncompressed envelope (gRPC, gRPC-Web), kept like its bytes for a frozen message. */
  envelope(message: Message, binary: boolean): Uint8Array {
    return kept(this.#envelopes[binary ? 1 : 0]!, message, () => envelope(0, this.encode(message, binary)));
  }
}

/** What `make` derives from a message: once per frozen message (see encode), every time for any other. */
function kept<V>(cache: WeakMap<object, V>, message: Message, make: () => V): V {
  if (!Object.isFrozen(message)) return make();
  let value = cache.get(message);
  if (value === undefined) cache.set(message, (value = make()));
  return value;
}

const utf8 = new TextDecoder();

/** A call the engine is answering, which shutdown may have to end. */
export abstract class ActiveCall {
  /** Its neighbours in the engine's calls in flight (ActiveCalls); only ActiveCalls sets them. */
  activePrevious: ActiveCall | undefined = undefined;
  activeNext: ActiveCall | undefined = undefined;
  abstract abortCall(reason: ConnectError): void;
}

/**
 * The calls in flight, linked through the calls themselves. Not a Set:
 * objects that pass through a long-lived Set or Map (added, then deleted)
 * get promoted by V8's scavenger, with all they reference, to the old
 * generation, where only a full GC frees them. Measured here (Node 24, an
 * old generation of some MB, as this server has): a Map set and deleted per
 * ~3 KB object promoted 5.5 MB per scavenge, an array slot set and cleared
 * none. Our reading: a rehash leaves the obsolete table pointing at the
 * entries it held and at its successor, and one such table in the old
 * generation keeps every later one alive. Node's HTTP/2 session keeps its
 * streams in such a Map (kState.streams), so HTTP/2 calls are promoted
 * whatever we do. A removed call's links are cleared: nothing keeps it.
 */
export class ActiveCalls {
  #first: ActiveCall | undefined = undefined;

  add(call: ActiveCall): void {
    const first = this.#first;
    call.activeNext = first;
    if (first !== undefined) first.activePrevious = call;
    this.#first = call;
  }

  /** Removes a call; one not in the list (already removed) is left alone. */
  delete(call: ActiveCall): void {
    const { activePrevious: previous, activeNext: next } = call;
    if (previous !== undefined) previous.activeNext = next;
    else if (this.#first === call) this.#first = next;
    else return;
    if (next !== undefined) next.activePrevious = previous;
    call.activePrevious = call.activeNext = undefined;
  }

  /** The calls in flight now, as an array: ending one removes it from the list. */
  toArray(): ActiveCall[] {
    const calls: ActiveCall[] = [];
    for (let call = this.#first; call !== undefined; call = call.activeNext) calls.push(call);
    return calls;
  }
}

export interface EngineOptions {
  table: RouteTable;
  /** The router's options, with the compressions it accepts; the interceptors but observability's own, which the engine does itself. */
  routerOptions: ConnectRouterOptions & { interceptors: Interceptor[] };
  observability: Observability;
  /** Checks each request message before its handler (the server's validation), innermost, as its interceptor does on connect-node's path. */
  checkRequest?: RequestCheck;
  /** Longest deadline a call gets (0: none), as src/transport/limits.ts's capDeadline applies it. */
  maxDeadlineMs: number;
}

/**
 * What every protocol of the engine shares: the method table, the router's
 * settings, the calls in flight. Built once from the route table.
 */
export class Engine {
  readonly methods = new Map<string, MethodEntry>();
  readonly settings: UniversalHandlerOptions;
  readonly observability: Observability;
  readonly maxDeadlineMs: number;
  /** The encodings the router accepts, as the request guard names them in every RPC reply. */
  readonly acceptEncodings: string;
  readonly active = new ActiveCalls();
  readonly #negotiated = new Map<string, Compression | null>();

  constructor(options: EngineOptions) {
    this.settings = validateUniversalHandlerOptions(options.routerOptions);
    const interceptors = this.settings.interceptors;
    this.observability = options.observability;
    this.maxDeadlineMs = options.maxDeadlineMs;
    this.acceptEncodings = this.settings.acceptCompression.map((c) => c.name).join(",");
    // A request gate runs before the body is read, with connect-node's own context: leave every call to it.
    if (this.settings.requestGate === undefined) {
      for (const routed of options.table.implementations.values()) {
        this.methods.set(routed.requestPath, new MethodEntry(routed, interceptors, options.checkRequest, this.settings));
      }
    }
    const shutdown = this.settings.shutdownSignal;
    shutdown?.addEventListener("abort", () => {
      const reason = ConnectError.from(shutdown.reason);
      for (const call of this.active.toArray()) call.abortCall(reason);
    });
  }

  get shutdownReason(): ConnectError | undefined {
    const shutdown = this.settings.shutdownSignal;
    return shutdown?.aborted ? ConnectError.from(shutdown.reason) : undefined;
  }

  /** Connect's negotiation of the response compression, memoised per header value (clients send a handful). */
  responseCompression(accept: string | null, headerName: string): Compression | null {
    if (accept === null) return null;
    let compression = this.#negotiated.get(accept);
    if (compression === undefined) {
      compression = compressionNegotiate(this.settings.acceptCompression, null, accept, headerName).response;
      if (this.#negotiated.size < 64) this.#negotiated.set(accept, compression);
    }
    return compression;
  }
}
