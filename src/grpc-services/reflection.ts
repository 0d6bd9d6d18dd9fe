import { type DescFile, type DescMessage, toBinary } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/**
 * Serves gRPC server reflection, grpc.reflection.v1 and v1alpha (clients try
 * v1 first), from the descriptors embedded in the generated code.
 *
 * `files` are the generated files whose services this server serves, e.g.
 * `file_route_guide` and `file_grpc_health_v1_health`. list_services names
 * the services declared in them plus the two reflection services; their
 * imports are only searched for files and symbols, since importing a file
 * for its messages does not mean serving its services.
 */
export function registerReflection(router: ConnectRouter, files: DescFile[]): void {
  const index = new DescriptorIndex([
    ...files,
    v1.file_grpc_reflection_v1_reflection,
    v1alpha.file_grpc_reflection_v1alpha_reflection,
  ]);
  router.service(v1.ServerReflection, {
    serverReflectionInfo: (requests) => answerAll(index, requests),
  });
  router.service(v1alpha.ServerReflection, {
    serverReflectionInfo: (requests) => answerAll(index, requests),
  });
}

/** What v1 and v1alpha requests have in common: their messages differ only by package. */
interface ReflectionRequest {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: Code; errorMessage: string } };

/**
 * One reflection stream. Like grpc-go, a file answer holds the requested file
 * and those of its transitive imports not yet sent on this stream: clients keep
 * what they received, and a file like person.proto is not resent with every
 * symbol that needs it.
 */
async function* answerAll<R extends ReflectionRequest>(
  index: DescriptorIndex,
  requests: AsyncIterable<R>,
) {
  const sent = new Set<string>();
  for await (const request of requests) {
    yield { validHost: request.host, originalRequest: request, messageResponse: answer(index, request, sent) };
  }
}

function answer(index: DescriptorIndex, { messageRequest }: ReflectionRequest, sent: Set<string>): ReflectionAnswer {
  switch (messageRequest.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: index.services.map((name) => ({ name })) } };
    case "fileByFilename": {
      const file = index.files.get(messageRequest.value);
      return file ? fileAnswer(index, file, sent) : notFound(`file not found: ${messageRequest.value}`);
    }
    case "fileContainingSymbol": {
      const file = index.symbols.get(messageRequest.value);
      return file ? fileAnswer(index, file, sent) : notFound(`symbol not found: ${messageRequest.value}`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = messageRequest.value;
      const file = index.extensions.get(containingType)?.get(extensionNumber);
      return file
        ? fileAnswer(index, file, sent)
        : notFound(`extension not found: ${containingType} ${extensionNumber}`);
    }
    case "allExtensionNumbersOfType": {
      const baseTypeName = messageRequest.value;
      if (!index.messages.has(baseTypeName)) return notFound(`message type not found: ${baseTypeName}`);
      const numbers = index.extensions.get(baseTypeName)?.keys() ?? [];
      return { case: "allExtensionNumbersResponse", value: { baseTypeName, extensionNumber: [...numbers] } };
    }
    case undefined:
      return error(Code.InvalidArgument, "empty message_request");
  }
}

function fileAnswer(index: DescriptorIndex, file: DescFile, sent: Set<string>): ReflectionAnswer {
  const fileDescriptorProto: Uint8Array[] = [];
  // Breadth-first over imports; the requested file is always included.
  const queue = [file];
  const seen = new Set<DescFile>(queue);
  for (let current = queue.shift(); current; current = queue.shift()) {
    const name = current.proto.name;
    if (current === file || !sent.has(name)) {
      sent.add(name);
      fileDescriptorProto.push(index.serialized(current));
    }
    for (const dep of current.dependencies) {
      if (!seen.has(dep)) {
        seen.add(dep);
        queue.push(dep);
      }
    }
  }
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto } };
}

function notFound(message: string): ReflectionAnswer {
  return error(Code.NotFound, message);
}

function error(errorCode: Code, errorMessage: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode, errorMessage } };
}

/** Every file, symbol and extension reachable from the served files, by name. */
class DescriptorIndex {
  /** Sorted full names of the services declared in the served files. */
  readonly services: string[];
  /** By file name, e.g. "route_guide.proto". */
  readonly files = new Map<string, DescFile>();
  /** Declaring file by full name of every service, method, message, field, oneof, enum, enum value and extension. */
  readonly symbols = new Map<string, DescFile>();
  readonly messages = new Set<string>();
  /** Declaring file by extendee full name, then field number. */
  readonly extensions = new Map<string, Map<number, DescFile>>();
  readonly #bytes = new Map<DescFile, Uint8Array>();

  constructor(served: DescFile[]) {
    this.services = [...new Set(served.flatMap((file) => file.services.map((s) => s.typeName)))].sort();
    for (const file of served) this.#addFile(file);
  }

  /**
   * The file's FileDescriptorProto in binary, built once. It has no comments: protoc-gen-es
   * leaves source info out of the generated code (@bufbuild/protobuf restores json_name and imports).
   */
  serialized(file: DescFile): Uint8Array {
    let bytes = this.#bytes.get(file);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.#bytes.set(file, bytes);
    }
    return bytes;
  }

  #addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const type of nestedTypes(file)) {
      this.symbols.set(type.typeName, file);
      switch (type.kind) {
        case "service":
          for (const method of type.methods) this.symbols.set(`${type.typeName}.${method.name}`, file);
          break;
        case "message":
          this.#addMessage(type, file);
          break;
        case "enum": {
          // Enum values are scoped as siblings of their enum, as in C++.
          const scope = type.typeName.slice(0, type.typeName.length - type.name.length);
          for (const value of type.values) this.symbols.set(scope + value.name, file);
          break;
        }
        case "extension": {
          let numbers = this.extensions.get(type.extendee.typeName);
          if (!numbers) this.extensions.set(type.extendee.typeName, (numbers = new Map()));
          numbers.set(type.number, file);
          break;
        }
      }
    }
    for (const dep of file.dependencies) this.#addFile(dep);
  }

  #addMessage(message: DescMessage, file: DescFile): void {
    this.messages.add(message.typeName);
    for (const field of message.fields) this.symbols.set(`${message.typeName}.${field.name}`, file);
    for (const oneof of message.oneofs) this.symbols.set(`${message.typeName}.${oneof.name}`, file);
    // Map entry messages (e.g. HealthListResponse.StatusesEntry) have no DescMessage, only their proto.
    for (const entry of message.proto.nestedType.filter((nested) => nested.options?.mapEntry)) {
      const entryName = `${message.typeName}.${entry.name}`;
      this.symbols.set(entryName, file);
      for (const field of entry.field) this.symbols.set(`${entryName}.${field.name}`, file);
    }
  }
}
