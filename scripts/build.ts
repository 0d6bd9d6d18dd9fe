// Bundles the server into one JavaScript file that plain `node` runs (`npm run build`; the
// Dockerfile's entry point): no tsx, no npm between the signal and the server. npm packages stay
// outside the bundle and come from node_modules (the image installs only the production ones).
import { readFile, rm } from "node:fs/promises";
import { dirname, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build, type Metafile, type Plugin } from "esbuild";

const root = fileURLToPath(new URL("../", import.meta.url));

/**
 * The bundle. Modules find their files relative to their own URL (src/routeguide/directory.ts
 * `../../data/people.json`, src/http/static.ts `../../out/web/`); in the bundle that URL is this
 * file's, so it sits as deep below the root as they do. `keepFileUrls` fails the build if one ever
 * stops resolving to the same file.
 */
export const serverBundle = fileURLToPath(new URL("../dist/server/main.js", import.meta.url));

/** Fails the build when a `new URL("…", import.meta.url)` would name another file from the bundle. */
const keepFileUrls: Plugin = {
  name: "keep-file-urls",
  setup(plugin) {
    plugin.onLoad({ filter: /\.ts$/ }, async ({ path }) => {
      const source = await readFile(path, "utf8");
      for (const [, target] of source.matchAll(/new URL\("([^"]+)", import\.meta\.url\)/g)) {
        const fromSource = new URL(target!, pathToFileURL(path)).href;
        const fromBundle = new URL(target!, pathToFileURL(serverBundle)).href;
        if (fromSource !== fromBundle) {
          return {
            errors: [{ text: `"${target}" names ${fromBundle} from ${relative(root, serverBundle)}, not ${fromSource}` }],
          };
        }
      }
      return undefined; // esbuild loads the file as usual
    });
  },
};

export async function buildServer(): Promise<Metafile> {
  await rm(dirname(serverBundle), { recursive: true, force: true });
  const { metafile } = await build({
    entryPoints: [fileURLToPath(new URL("../src/main.ts", import.meta.url))],
    outfile: serverBundle,
    // Paths in the metafile and in the bundle's "// src/…" comments are the repository's, from any cwd.
    absWorkingDir: root,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    packages: "external",
    plugins: [keepFileUrls],
    metafile: true,
    logLevel: "warning",
  });
  return metafile;
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await buildServer();
