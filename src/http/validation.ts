import { createValidator } from "@bufbuild/protovalidate";
import type { Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";

/**
 * Router interceptor that checks every request message, each message of a
 * stream too, against the buf.validate rules in its proto before the service
 * sees it. A message that breaks one gets INVALID_ARGUMENT with a
 * buf.validate.Violations detail (grpc-status-details-bin for gRPC and
 * gRPC-Web, `details` in Connect's JSON error). Messages without rules pass
 * at the cost of a lookup: protovalidate plans each message type once.
 */
export const validationInterceptor: Interceptor = createValidateInterceptor({ validator: createValidator() });
