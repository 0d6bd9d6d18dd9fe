import type { IncomingHttpHeaders } from "node:http";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectError, ContextValues, HandlerContext } from "@connectrpc/connect";

/** What a protocol knows of a call when it creates its context. */
export interface ContextInit {
  readonly method: DescMethod;
  readonly protocolName: string;
  readonly requestMethod: string;
  /** The request's headers as Node parsed them (pseudo-headers are skipped). */
  readonly nodeHeaders: IncomingHttpHeaders;
  /** "http" or "https", the :authority or Host, and the path with its query. */
  readonly scheme: string;
  readonly authority: string;
  readonly path: string;
  /** The response headers and trailers the protocol starts with (Connect's createHandlerContext sets the same). */
  readonly responseHeader: Readonly<Record<string, string>>;
  readonly responseTrailer: Readonly<Record<string, string>>;
  /** The router's context values for this call (observability's call record, ...). */
  readonly values: () => ContextValues;
}

/**
 * A HandlerContext that builds its parts when a handler or interceptor first
 * reads them. Connect's createHandlerContext builds three Headers, a deadline
 * timer and linked AbortControllers for every call (3.6-13.8 µs measured
 * here, against ~30 µs for a whole fast call), and aborts them at the end
 * (each abort builds a DOMException with a stack). Here the engine owns the
 * deadline and shutdown, and a signal exists only once someone asks for it.
 */
export class EngineContext implements HandlerContext {
  readonly method: DescMethod;
  readonly service: DescService;
  readonly protocolName: string;
  readonly requestMethod: string;
  readonly #init: ContextInit;
  #deadline: number | undefined = undefined;
  #controller: AbortController | undefined = undefined;
  #abortReason: ConnectError | undefined = undefined;
  #finished = false;
  #url: string | undefined = undefined;
  #requestHeader: Headers | undefined = undefined;
  #responseHeader: Headers | undefined = undefined;
  #responseTrailer: Headers | undefined = undefined;
  #values: ContextValues | undefined = undefined;

  constructor(init: ContextInit) {
    this.#init = init;
    this.method = init.method;
    this.service = init.method.parent;
    this.protocolName = init.protocolName;
    this.requestMethod = init.requestMethod;
  }

  /** The call's deadline, `ms` from now: the engine's own timer ends the call then. */
  setDeadline(ms: number): void {
    this.#deadline = Date.now() + ms;
  }

  get url(): string {
    return (this.#url ??= new URL(this.#init.path, `${this.#init.scheme}://${this.#init.authority}`).toString());
  }

  readonly timeoutMs = (): number | undefined => (this.#deadline === undefined ? undefined : this.#deadline - Date.now());

  /** Aborts with the call's end: its deadline, the client's cancel, shutdown, or (reason undefined) completion. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  /** Why the call was aborted, if it was: a handler that never read the signal learns it here. */
  get abortReason(): ConnectError | undefined {
    return this.#abortReason;
  }

  abort(reason: ConnectError): void {
    if (this.#abortReason !== undefined || this.#finished) return;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
  }

  /** At the end of a call that succeeded, as Connect does; free when nobody held the signal. */
  finish(): void {
    if (this.#abortReason !== undefined || this.#finished) return;
    this.#finished = true;
    this.#controller?.abort(callEnded);
  }

  get requestHeader(): Headers {
    if (this.#requestHeader === undefined) {
      const header = new Headers();
      const nodeHeaders = this.#init.nodeHeaders;
      for (const key in nodeHeaders) {
        if (key.charCodeAt(0) === 0x3a /* : */) continue;
        const value = nodeHeaders[key];
        if (value === undefined) continue;
        if (typeof value === "string") header.append(key, value);
        else for (const v of value) header.append(key, v);
      }
      this.#requestHeader = header;
    }
    return this.#requestHeader;
  }

  get responseHeader(): Headers {
    return (this.#responseHeader ??= new Headers(this.#init.responseHeader));
  }

  get responseTrailer(): Headers {
    return (this.#responseTrailer ??= new Headers(this.#init.responseTrailer));
  }

  /** The response headers as the handler left them, or undefined when nobody touched them. */
  get touchedResponseHeader(): Headers | undefined {
    return this.#responseHeader;
  }

  get touchedResponseTrailer(): Headers | undefined {
    return this.#responseTrailer;
  }

  get values(): ContextValues {
    return (this.#values ??= this.#init.values());
  }
}

/**
 * The reason a finished call's signal carries: the AbortError connect-es's
 * context gets, made once, since each abort() without a reason builds a
 * DOMException with a stack trace (~7 µs measured here).
 */
const callEnded = new DOMException("The call has ended.", "AbortError");
