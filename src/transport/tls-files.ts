import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { ConfigError } from "../config.js";

/**
 * Reads and checks the --tls-cert and --tls-key files before the server (or
 * any worker) starts, so that a missing file, a swapped pair or a key of
 * another certificate is one line naming the flag, not an OpenSSL stack trace.
 */
export async function checkTlsFiles(tls: { certFile: string; keyFile: string }): Promise<void> {
  const cert = await readFlagFile("--tls-cert", tls.certFile);
  const key = await readFlagFile("--tls-key", tls.keyFile);
  const certificate = parseOr(() => new X509Certificate(cert));
  const privateKey = parseOr(() => createPrivateKey(key));
  if (certificate === undefined && privateKey === undefined && parseOr(() => new X509Certificate(key)) !== undefined) {
    throw new ConfigError(
      `--tls-cert ${tls.certFile} holds no certificate and --tls-key ${tls.keyFile} holds one: are the two swapped?`,
    );
  }
  if (certificate === undefined) throw new ConfigError(`--tls-cert ${tls.certFile} holds no PEM certificate`);
  if (privateKey === undefined) throw new ConfigError(`--tls-key ${tls.keyFile} holds no PEM private key`);
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ConfigError(`--tls-key ${tls.keyFile} is not the key of the certificate in --tls-cert ${tls.certFile}`);
  }
}

async function readFlagFile(flag: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${flag} ${file}: ${code === "ENOENT" ? "no such file" : `cannot read it (${code})`}`);
  }
}

function parseOr<T>(parse: () => T): T | undefined {
  try {
    return parse();
  } catch {
    return undefined;
  }
}
