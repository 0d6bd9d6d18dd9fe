// A real OTLP/HTTP receiver for tests: an HTTP server on a free loopback port
// that takes what an OTLP exporter POSTs to /v1/traces (protobuf) and decodes
// it by the field numbers of opentelemetry-proto's trace.proto, common.proto,
// resource.proto and collector/trace/v1/trace_service.proto.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export type AttributeValue = string | boolean | number | bigint | Uint8Array | AttributeValue[] | undefined;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, AttributeValue>;
  events: Array<{ name: string; attributes: Record<string, AttributeValue> }>;
  droppedEvents: number;
  /** Status code: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  /** The resource's attributes, e.g. service.name. */
  resource: Record<string, AttributeValue>;
}

export interface OtlpReceiver {
  /** For OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318 */
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Requests received, decodable or not. */
  readonly requests: number;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      requests++;
      if (req.method !== "POST" || req.url !== "/v1/traces" || req.headers["content-type"] !== "application/x-protobuf") {
        res.writeHead(400).end();
        return;
      }
      spans.push(...decodeExportTraceServiceRequest(Buffer.concat(chunks)));
      // An empty ExportTraceServiceResponse: everything accepted.
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    get requests() {
      return requests;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Calls `field` for each field of the message in `bytes`; skips what it does not read. */
function fields(bytes: Uint8Array, field: (no: number, reader: BinaryReader, wireType: WireType) => boolean): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (!field(no, reader, wireType)) reader.skip(wireType, no);
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function decodeExportTraceServiceRequest(bytes: Uint8Array): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  // ExportTraceServiceRequest.resource_spans = 1
  fields(bytes, (no, r) => no === 1 && (decodeResourceSpans(r.bytes(), spans), true));
  return spans;
}

function decodeResourceSpans(bytes: Uint8Array, out: ReceivedSpan[]): void {
  let resource: Record<string, AttributeValue> = {};
  const spans: ReceivedSpan[] = [];
  fields(bytes, (no, r) => {
    // ResourceSpans.resource = 1 (Resource.attributes = 1), .scope_spans = 2 (ScopeSpans.spans = 2)
    if (no === 1) fields(r.bytes(), (n, rr) => n === 1 && (addKeyValue(rr.bytes(), (resource = { ...resource })), true));
    else if (no === 2) fields(r.bytes(), (n, rr) => n === 2 && (spans.push(decodeSpan(rr.bytes())), true));
    else return false;
    return true;
  });
  for (const span of spans) out.push({ ...span, resource });
}

function decodeSpan(bytes: Uint8Array): ReceivedSpan {
  const span: ReceivedSpan = {
    traceId: "", spanId: "", parentSpanId: "", traceState: "", name: "", kind: 0,
    attributes: {}, events: [], droppedEvents: 0, status: { code: 0, message: "" }, resource: {},
  };
  fields(bytes, (no, r) => {
    switch (no) {
      case 1: span.traceId = hex(r.bytes()); return true;
      case 2: span.spanId = hex(r.bytes()); return true;
      case 3: span.traceState = r.string(); return true;
      case 4: span.parentSpanId = hex(r.bytes()); return true;
      case 5: span.name = r.string(); return true;
      case 6: span.kind = r.int32(); return true;
      case 9: addKeyValue(r.bytes(), span.attributes); return true;
      case 11: span.events.push(decodeEvent(r.bytes())); return true;
      case 12: span.droppedEvents = r.uint32(); return true;
      case 15:
        fields(r.bytes(), (n, rr) => {
          if (n === 2) span.status.message = rr.string();
          else if (n === 3) span.status.code = rr.int32();
          else return false;
          return true;
        });
        return true;
    }
    return false;
  });
  return span;
}

function decodeEvent(bytes: Uint8Array): ReceivedSpan["events"][number] {
  const event = { name: "", attributes: {} as Record<string, AttributeValue> };
  fields(bytes, (no, r) => {
    if (no === 2) event.name = r.string();
    else if (no === 3) addKeyValue(r.bytes(), event.attributes);
    else return false;
    return true;
  });
  return event;
}

/** KeyValue: key = 1, value = 2 (AnyValue). */
function addKeyValue(bytes: Uint8Array, into: Record<string, AttributeValue>): void {
  let key = "";
  let value: AttributeValue;
  fields(bytes, (no, r) => {
    if (no === 1) key = r.string();
    else if (no === 2) value = decodeAnyValue(r.bytes());
    else return false;
    return true;
  });
  into[key] = value;
}

/** AnyValue: string 1, bool 2, int 3, double 4, array 5 (ArrayValue.values = 1), bytes 7. */
function decodeAnyValue(bytes: Uint8Array): AttributeValue {
  let value: AttributeValue;
  fields(bytes, (no, r) => {
    switch (no) {
      case 1: value = r.string(); return true;
      case 2: value = r.bool(); return true;
      case 3: value = Number(r.int64()); return true;
      case 4: value = r.double(); return true;
      case 5: {
        const values: AttributeValue[] = [];
        fields(r.bytes(), (n, rr) => n === 1 && (values.push(decodeAnyValue(rr.bytes())), true));
        value = values;
        return true;
      }
      case 7: value = r.bytes(); return true;
    }
    return false;
  });
  return value;
}
