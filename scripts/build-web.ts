// Bundles the page in web/ for the server to serve (`npm run build:web`; `npm start` runs it
// first): app.js holds connect-web, the generated schemas and the page's code, so a browser
// downloads nothing else at run time.
import { rm } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";
import { webBundleDir } from "../src/http/static.js";

const web = (file: string) => fileURLToPath(new URL(`../web/${file}`, import.meta.url));

export async function buildWeb(): Promise<void> {
  // Start empty, so a file removed from web/ is not served any more.
  await rm(webBundleDir, { recursive: true, force: true });
  await build({
    entryPoints: { app: web("main.ts"), style: web("style.css"), index: web("index.html") },
    loader: { ".html": "copy" },
    outdir: webBundleDir,
    bundle: true,
    format: "esm",
    // Browsers from 2023 on; fetch streams and `??` need nothing transpiled.
    target: ["chrome115", "firefox115", "safari16"],
    minify: true,
    sourcemap: "linked",
    logLevel: "warning",
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) await buildWeb();
