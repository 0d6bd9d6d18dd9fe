// The page at /: looks people up with the generated RouteGuide client over
// connect-web (fetch), on the origin that served the page.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { Person_Gender, type Person } from "../gen/person_pb.js";
import { RouteGuide } from "../gen/route_guide_pb.js";
import { clientCommand, curlCommand, getPersonUrl } from "./commands.js";

type Protocol = "connect" | "grpc-web";

const origin = location.origin;
const clients: Record<Protocol, Client<typeof RouteGuide>> = {
  // GET for GetPerson (it has no side effects): a URL the browser and CDNs may cache, and no CORS preflight.
  connect: createClient(RouteGuide, createConnectTransport({ baseUrl: origin, useHttpGet: true })),
  "grpc-web": createClient(RouteGuide, createGrpcWebTransport({ baseUrl: origin })),
};
const protocolLabels: Record<Protocol, string> = {
  connect: "Connect · JSON · GET",
  "grpc-web": "gRPC-Web · binary · POST",
};
const defaultNames = ["Alice", "Bob", "Charlie"];

const form = element("lookup", HTMLFormElement);
const input = element("names", HTMLInputElement);
const results = element("results", HTMLElement);
let lookups = 0;

form.addEventListener("submit", (event) => {
  event.preventDefault();
  void lookUp();
});
form.addEventListener("change", showMode);
for (const button of document.querySelectorAll<HTMLButtonElement>("button[data-copy]")) {
  button.addEventListener("click", () => copy(button));
}
showMode();
showCommands(defaultNames);

async function lookUp(): Promise<void> {
  const several = chosen("mode") === "several";
  const protocol = chosen("protocol") as Protocol;
  const names = several ? [...new Set(input.value.split(",").map((n) => n.trim()).filter((n) => n !== ""))] : [input.value.trim()];
  if (names.length === 0) {
    results.replaceChildren(h("p", { className: "message" }, "Type one or more names, separated by commas."));
    return;
  }
  // A slower, older lookup must not overwrite a newer one.
  const lookup = ++lookups;
  results.replaceChildren(h("p", { className: "message" }, `Looking up ${names.join(", ")}…`));
  const outcomes = await Promise.allSettled(names.map((name) => clients[protocol].getPerson({ name })));
  if (lookup !== lookups) return;

  const cards = outcomes.map((o, i) => (o.status === "fulfilled" ? personCard(o.value) : errorCard(names[i]!, o.reason)));
  const found = outcomes.filter((o) => o.status === "fulfilled").length;
  const summary = several ? `${names.length} GetPerson calls in parallel, ${found} found` : "GetPerson";
  results.replaceChildren(
    h("p", { className: "via" }, `${summary} · ${protocolLabels[protocol]}`),
    h("div", { className: several ? "cards grid" : "cards" }, ...cards),
  );
  showGetUrls(names);
  // The CLI starts with GetPerson for the first name, which must exist for it to go on to GetPeople.
  const foundFirst = names.filter((_, i) => outcomes[i]!.status === "fulfilled");
  showCommands([...foundFirst, ...names.filter((n) => !foundFirst.includes(n))].filter((n) => n !== ""));
}

function personCard(person: Person): HTMLElement {
  const gender = Person_Gender[person.gender] ?? String(person.gender);
  const address = [person.address?.street, person.address?.city].filter((part) => part).join(", ");
  return h(
    "article",
    { className: "card person" },
    h(
      "header",
      {},
      h("span", { className: "avatar", ariaHidden: "true" }, person.name.slice(0, 1).toUpperCase()),
      h("h2", {}, person.name),
      h("span", { className: `badge ${gender.toLowerCase()}` }, titleCase(gender)),
    ),
    h(
      "dl",
      {},
      h("dt", {}, "Age"),
      h("dd", { className: "age" }, String(person.age)),
      h("dt", {}, "Hobbies"),
      h("dd", {}, h("ul", { className: "chips" }, ...person.hobbies.map((hobby) => h("li", {}, hobby)))),
      h("dt", {}, "Address"),
      h("dd", { className: "address" }, address || "—"),
    ),
  );
}

function errorCard(name: string, reason: unknown): HTMLElement {
  const err = ConnectError.from(reason);
  if (err.code === Code.NotFound) {
    return h("article", { className: "card not-found" }, h("p", {}, `No person named “${name}”.`));
  }
  return h("article", { className: "card error" }, h("p", {}, `Error: ${err.message}`));
}

function showGetUrls(names: string[]): void {
  const urls = names.filter((n) => n !== "").map((name) => getPersonUrl(origin, name));
  element("get-url-list", HTMLUListElement).replaceChildren(
    ...urls.map((url) => h("li", {}, h("a", { href: url, target: "_blank", rel: "noopener" }, url))),
  );
  element("get-urls", HTMLElement).hidden = urls.length === 0;
}

function showCommands(names: string[]): void {
  const list = names.length > 0 ? names : defaultNames;
  element("cmd-client", HTMLElement).textContent = clientCommand(origin, list);
  element("cmd-curl", HTMLElement).textContent = curlCommand(origin, list);
}

function showMode(): void {
  const several = chosen("mode") === "several";
  element("names-label", HTMLLabelElement).textContent = several ? "Names" : "Name";
  input.placeholder = several ? defaultNames.join(", ") : defaultNames[0]!;
  element("several-hint", HTMLElement).hidden = !several;
}

function copy(button: HTMLButtonElement): void {
  const text = element(button.dataset.copy!, HTMLElement).textContent ?? "";
  navigator.clipboard.writeText(text).then(
    () => flash(button, "Copied"),
    () => flash(button, "Select and copy"),
  );
}

function flash(button: HTMLButtonElement, text: string): void {
  button.textContent = text;
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

function chosen(name: string): string {
  return (form.elements.namedItem(name) as RadioNodeList).value;
}

function titleCase(word: string): string {
  return word.slice(0, 1) + word.slice(1).toLowerCase();
}

/** The element with this id, which the page must have. */
function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`page has no ${type.name} #${id}`);
  return el;
}

/** Builds an element; text goes in as text nodes, never as HTML. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]>,
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = Object.assign(document.createElement(tag), props);
  el.append(...children);
  return el;
}
