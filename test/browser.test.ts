// The page and CORS in a real browser: Debian's Chromium, driven by playwright-core.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { chromium, type Browser, type BrowserContext, type Page, type Request, type Route } from "playwright-core";
import { buildWeb } from "../scripts/build-web.js";
import { startTestServer, type RunningServer } from "./support/server.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CHROMIUM = "/usr/bin/chromium";

/** Why the browser tests cannot run here, or undefined when they can. In CI a missing Chromium is a failure. */
function chromiumSkipReason(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const reason = `browser tests need Chromium at ${CHROMIUM} (apt-get install chromium)`;
  if (process.env.CI === "true") throw new Error(reason);
  return reason;
}

const skip = chromiumSkipReason();
let browser: Browser;
let server: RunningServer;

// Bounds a hung browser; nothing here asserts on time.
describe("Chromium", { skip, timeout: 180_000 }, () => {
  before(async () => {
    await buildWeb();
    server = await startTestServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // A fresh temporary profile each launch; nothing reaches out to Google's services.
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  describe("the page at /", () => {
    for (const [protocol, method, contentType] of [
      ["connect", "GET", undefined],
      ["grpc-web", "POST", "application/grpc-web+proto"],
    ] as const) {
      it(`looks up Alice over ${protocol} (${method}) and shows her card`, async () => {
        await withPage(async (page) => {
          const calls = recordCalls(page);
          await page.goto(server.url);
          await lookUp(page, "Alice", { protocol });
          assert.deepEqual(await cardTexts(page), [
            { name: "Alice", gender: "Female", age: "30", hobbies: ["reading", "swimming"], address: "123 Main St, New York" },
          ]);
          assert.equal(calls.length, 1);
          assert.equal(calls[0]!.method(), method);
          assert.equal(calls[0]!.headers()["content-type"], contentType);
          assert.match(await page.textContent("#results .via") ?? "", method === "GET" ? /Connect · JSON · GET/ : /gRPC-Web · binary · POST/);
        });
      });

      it(`says there is no person named Charlie over ${protocol}`, async () => {
        await withPage(async (page) => {
          await page.goto(server.url);
          await lookUp(page, "Charlie", { protocol });
          assert.equal(await page.textContent("#results .not-found"), "No person named “Charlie”.");
          assert.equal(await page.locator("#results .person").count(), 0);
        });
      });
    }

    it("shows any other error with its code: an empty name is invalid_argument", async () => {
      await withPage(async (page) => {
        await page.goto(server.url);
        await lookUp(page, "", { protocol: "grpc-web" });
        assert.equal(await page.textContent("#results .error"), "Error: [invalid_argument] name: value is required [required]");
      });
    });

    it("shows the GET URL it fetched, and the server lets caches keep it for a minute", async () => {
      await withPage(async (page) => {
        const calls = recordCalls(page);
        await page.goto(server.url);
        await lookUp(page, "Bob");
        const shown = await page.getAttribute("#get-url-list a", "href");
        assert.equal(shown, calls[0]!.url());
        const response = await calls[0]!.response();
        assert.equal(response!.headers()["cache-control"], "public, max-age=60");
        // The URL works on its own, as a link opened in a tab would.
        const opened = await page.goto(shown!);
        assert.equal((await opened!.json()).address.city, "Los Angeles");
      });
    });

    it("looks up several names at once, with the GetPerson calls in flight together", async () => {
      await withPage(async (page) => {
        // Hold each call until all three have arrived: calls made one after another never get there.
        const held: Route[] = [];
        let releaseAll!: () => void;
        const allHeld = new Promise<void>((resolve) => (releaseAll = resolve));
        const bound = setTimeout(releaseAll, 10_000);
        await page.route((url) => url.pathname === "/RouteGuide/GetPerson", async (route) => {
          held.push(route);
          if (held.length === 3) releaseAll();
          await allHeld;
          await route.continue();
        });
        await page.goto(server.url);
        await lookUp(page, "Alice, Bob, Charlie", { several: true });
        clearTimeout(bound);
        assert.equal(held.length, 3);
        assert.deepEqual((await cardTexts(page)).map((p) => p.name), ["Alice", "Bob"]);
        assert.equal(await page.textContent("#results .not-found"), "No person named “Charlie”.");
        assert.match(await page.textContent("#results .via") ?? "", /3 GetPerson calls in parallel, 2 found/);
        assert.equal(await page.locator("#get-url-list a").count(), 3);
        await mkdir(`${ROOT}/test-output`, { recursive: true });
        const screenshot = `${ROOT}/test-output/browser-page.png`;
        await page.screenshot({ path: screenshot, fullPage: true });
        assert.ok((await stat(screenshot)).size > 10_000, `a screenshot for a human: ${screenshot}`);
      });
    });

    it("explains why GetPeople can't be called, and its terminal commands make the bidi call", async () => {
      await withPage(async (page) => {
        await page.goto(server.url);
        assert.match(await page.textContent("#streaming") ?? "", /Browsers cannot stream a request body/);
        await lookUp(page, "Charlie, Bob, Alice", { several: true });

        // Built from the page's own origin; a name that exists goes first, as the CLI's GetPerson needs it.
        const curl = (await page.textContent("#cmd-curl"))!;
        assert.ok(curl.includes(`${server.url}/RouteGuide/GetPeople`), curl);
        const { stdout: streamed } = await run("bash", ["-c", curl], { cwd: ROOT });
        assert.deepEqual(
          [...streamed.matchAll(/"name":"(\w+)"/g)].map((m) => m[1]),
          ["Bob", "Alice"],
          "the people, in the order their names were sent; Charlie skipped",
        );

        const client = (await page.textContent("#cmd-client"))!;
        assert.equal(client, `npm run client -- --url ${server.url} Bob Alice Charlie`);
        const { stdout } = await run("bash", ["-c", client], { cwd: ROOT });
        assert.deepEqual(
          stdout.split("\n").filter((line) => line.startsWith("Get")).map((line) => line.split(",")[0]),
          ["GetPerson: Bob", "GetPeople: Bob", "GetPeople: Alice"],
        );
      });
    });
  });

  describe("a page on another origin", () => {
    let other: http.Server;
    let otherOrigin: string;

    before(async () => {
      // connect-web's gRPC-Web client, bundled for the other origin's page.
      const bundle = await build({
        stdin: {
          resolveDir: ROOT,
          loader: "ts",
          contents: `
            import { ConnectError, createClient } from "@connectrpc/connect";
            import { createGrpcWebTransport } from "@connectrpc/connect-web";
            import { RouteGuide } from "./gen/route_guide_pb.js";
            globalThis.grpcWebGetPerson = async (baseUrl, name) => {
              const client = createClient(RouteGuide, createGrpcWebTransport({ baseUrl }));
              try {
                const person = await client.getPerson({ name });
                return { name: person.name, city: person.address?.city };
              } catch (e) {
                const err = ConnectError.from(e);
                return { code: err.code, message: err.rawMessage };
              }
            };`,
        },
        bundle: true,
        format: "esm",
        write: false,
      });
      const files: Record<string, [string, string]> = {
        "/": ["text/html", `<!doctype html><title>Another origin</title><script type="module" src="/client.js"></script>`],
        "/client.js": ["text/javascript", bundle.outputFiles[0]!.text],
      };
      other = http.createServer((req, res) => {
        const file = files[req.url!];
        if (file) res.writeHead(200, { "content-type": file[0] }).end(file[1]);
        else res.writeHead(404).end();
      });
      other.listen(0, "127.0.0.1");
      await once(other, "listening");
      otherOrigin = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
      assert.notEqual(otherOrigin, server.url);
    });
    after(() => {
      other.close();
      other.closeAllConnections();
    });

    it("calls GetPerson with fetch POST and Connect JSON, after a preflight", async () => {
      await withPage(async (page, preflights) => {
        await page.goto(otherOrigin);
        // No named functions inside: tsx would wrap them in a helper that the page doesn't have.
        const results = await page.evaluate(async (base) => {
          const results = [];
          for (const name of ["Alice", "Charlie"]) {
            const res = await fetch(`${base}/RouteGuide/GetPerson`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ name }),
            });
            results.push({ status: res.status, body: await res.json() });
          }
          return results;
        }, server.url);
        assert.equal(results[0]!.status, 200);
        assert.equal(results[0]!.body.address.city, "New York");
        assert.deepEqual(results[1], { status: 404, body: { code: "not_found", message: 'no person named "Charlie"' } });
        assert.ok(preflights.includes(`${server.url}/RouteGuide/GetPerson`), "application/json needs a preflight");
      });
    });

    it("calls GetPerson with a plain fetch GET, without a preflight, and reads Cache-Control", async () => {
      await withPage(async (page, preflights) => {
        await page.goto(otherOrigin);
        const results = await page.evaluate(async (base) => {
          const results = [];
          for (const name of ["Bob", "Charlie"]) {
            const message = encodeURIComponent(JSON.stringify({ name }));
            const res = await fetch(`${base}/RouteGuide/GetPerson?encoding=json&message=${message}`);
            results.push({ status: res.status, cacheControl: res.headers.get("cache-control"), body: await res.json() });
          }
          return results;
        }, server.url);
        assert.deepEqual(
          { ...results[0]!, body: results[0]!.body.name },
          { status: 200, cacheControl: "public, max-age=60", body: "Bob" },
        );
        assert.deepEqual(results[1], {
          status: 404,
          cacheControl: "no-store",
          body: { code: "not_found", message: 'no person named "Charlie"' },
        });
        assert.deepEqual(preflights, []);
      });
    });

    it("calls GetPerson with connect-web's gRPC-Web transport and reads the NOT_FOUND status", async () => {
      await withPage(async (page) => {
        await page.goto(otherOrigin);
        await page.waitForFunction(() => "grpcWebGetPerson" in globalThis);
        const results = await page.evaluate(async (base) => {
          const call = (globalThis as unknown as { grpcWebGetPerson: (b: string, n: string) => Promise<unknown> }).grpcWebGetPerson;
          return [await call(base, "Alice"), await call(base, "Charlie")];
        }, server.url);
        assert.deepEqual(results, [
          { name: "Alice", city: "New York" },
          { code: 5, message: 'no person named "Charlie"' },
        ]);
      });
    });

    it("is refused when the server allows only other origins (--cors-origin)", async () => {
      const strict = await startTestServer({ corsOrigins: ["http://app.example"] });
      const welcoming = await startTestServer({ corsOrigins: ["http://app.example", otherOrigin] });
      try {
        await withPage(async (page) => {
          await page.goto(otherOrigin);
          const outcome = (base: string) =>
            page.evaluate(async (url) => {
              try {
                const res = await fetch(`${url}/RouteGuide/GetPerson?encoding=json&message=${encodeURIComponent('{"name":"Alice"}')}`);
                return `HTTP ${res.status}`;
              } catch (err) {
                return (err as Error).name;
              }
            }, base);
          assert.equal(await outcome(strict.url), "TypeError", "the browser hides a response the server did not allow");
          assert.equal(await outcome(welcoming.url), "HTTP 200");
        });
      } finally {
        await strict.close();
        await welcoming.close();
      }
    });
  });
});

/** A fresh context (no cache, no cookies) and page; `preflights` lists the URLs the browser sent OPTIONS to. */
async function withPage(test: (page: Page, preflights: string[]) => Promise<void>): Promise<void> {
  const context: BrowserContext = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  try {
    const page = await context.newPage();
    const errors: Error[] = [];
    page.on("pageerror", (err) => errors.push(err));
    // Chromium sends preflights itself; only the DevTools protocol shows them.
    const preflights: string[] = [];
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    cdp.on("Network.requestWillBeSent", ({ request }) => {
      if (request.method === "OPTIONS") preflights.push(request.url);
    });
    await test(page, preflights);
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  } finally {
    await context.close();
  }
}

/** Types names into the page's form and submits it with Enter, as a person would. */
async function lookUp(page: Page, names: string, options: { protocol?: "connect" | "grpc-web"; several?: boolean } = {}): Promise<void> {
  await page.check(`input[name=mode][value=${options.several ? "several" : "one"}]`);
  await page.check(`input[name=protocol][value=${options.protocol ?? "connect"}]`);
  await page.fill("#names", names);
  await page.press("#names", "Enter");
  await page.waitForSelector("#results .cards");
}

/** The RPCs the page makes, as the browser sent them. */
function recordCalls(page: Page): Request[] {
  const calls: Request[] = [];
  page.on("request", (request) => {
    if (new URL(request.url()).pathname.startsWith("/RouteGuide/")) calls.push(request);
  });
  return calls;
}

function cardTexts(page: Page) {
  return page.$$eval("#results .person", (cards) =>
    cards.map((card) => ({
      name: card.querySelector("h2")!.textContent,
      gender: card.querySelector(".badge")!.textContent,
      age: card.querySelector(".age")!.textContent,
      hobbies: [...card.querySelectorAll(".chips li")].map((li) => li.textContent),
      address: card.querySelector(".address")!.textContent,
    })),
  );
}
