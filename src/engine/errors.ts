import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The errors the engine raises itself, word for word as connect-es raises
 * them on its general path, so clients and the differential tests see one
 * server whichever path answered.
 */

/** Connect answers anything but a ConnectError with "internal error", the original kept as the cause. */
export function asError(error: unknown): ConnectError {
  return error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}

/** createDeadlineSignal's reason, as the handler's signal carries it. */
export function deadlineExceeded(): ConnectError {
  return new ConnectError("the operation timed out", Code.DeadlineExceeded);
}

export function incompleteEnvelope(): ConnectError {
  return new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
}

/** ensureSingle's errors, for a method of kind "unary" or "server-streaming". */
export function missingInput(kind: string): ConnectError {
  return new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
}

export function extraInput(kind: string): ConnectError {
  return new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented);
}

/** assertReadMaxBytes, word for word. */
export function tooLarge(size: number, readMaxBytes: number): ConnectError {
  return new ConnectError(`message size ${size} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted);
}
