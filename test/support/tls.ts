import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export interface Certificate {
  certFile: string;
  keyFile: string;
  /** Deletes the files. */
  remove(): Promise<void>;
}

/** A throwaway self-signed certificate for localhost and 127.0.0.1 (clients pass rejectUnauthorized: false). */
export async function throwawayCertificate(): Promise<Certificate> {
  const dir = await mkdtemp(join(tmpdir(), "routeguide-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  await promisify(execFile)("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", keyFile, "-out", certFile]);
  return { certFile, keyFile, remove: () => rm(dir, { recursive: true, force: true }) };
}
