// The results as an SVG bar chart, written by hand so the benchmark needs no
// charting package: per workload, one bar per server for throughput, p99 and CPU.
import type { Peer } from "./peer-list.js";
import type { Aggregated, Measurement, Meta } from "./report.js";
import type { Workload } from "./workloads.js";

const colors: Record<string, string> = {
  ours: "#2563eb",
  "grpc-js": "#16a34a",
  python: "#ca8a04",
  "connect-defaults": "#dc2626",
  bare: "#6b7280",
};

interface Panel {
  title: string;
  value(m: Measurement): number | undefined;
  format(x: number): string;
}

const panels: Panel[] = [
  { title: "req/s (bidi: msg/s), higher is better", value: (m) => m.rate, format: (x) => Math.round(x).toLocaleString("en") },
  { title: "p99 latency ms, lower is better", value: (m) => m.p99Ms, format: (x) => x.toFixed(2) },
  { title: "server CPU µs/req (bidi: /msg), lower is better", value: (m) => m.cpuUs, format: (x) => x.toFixed(1) },
];

const labelWidth = 180;
const panelWidth = 320;
const barMax = 240;
const rowHeight = 18;
const width = labelWidth + panels.length * panelWidth + 10;

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function renderChart(peers: Peer[], workloads: Workload[], results: Aggregated, meta: Meta): string {
  const out: string[] = [];
  let y = 50;
  panels.forEach((panel, i) => {
    out.push(`<text x="${labelWidth + i * panelWidth}" y="${y}" class="head">${escape(panel.title)}</text>`);
  });
  y += 16;
  for (const workload of workloads) {
    const byPeer = results[workload.id] ?? {};
    const rows = peers.filter((p) => byPeer[p.id] !== undefined);
    if (rows.length === 0) continue;
    y += 14;
    out.push(`<text x="0" y="${y}" class="title">${escape(workload.title)}</text>`);
    y += 6;
    // Each panel scales to the largest bar of this workload.
    const maxima = panels.map((panel) =>
      Math.max(0, ...rows.map((p) => byPeer[p.id]!.median).map((pm) => (pm && panel.value(pm)) ?? 0)),
    );
    rows.forEach((peer, r) => {
      const top = y + r * rowHeight;
      const m = byPeer[peer.id]!.median;
      out.push(`<text x="${labelWidth - 8}" y="${top + 12}" text-anchor="end">${escape(peer.label)}</text>`);
      panels.forEach((panel, i) => {
        const x = labelWidth + i * panelWidth;
        const value = m === undefined ? undefined : panel.value(m);
        const max = maxima[i]!;
        if (value === undefined) {
          out.push(`<text x="${x}" y="${top + 12}" class="none">${m === undefined ? "failed" : "–"}</text>`);
          return;
        }
        const w = max > 0 ? Math.max(1, (value / max) * barMax) : 1;
        out.push(`<rect x="${x}" y="${top + 2}" width="${w.toFixed(1)}" height="13" fill="${colors[peer.id] ?? "#888"}"/>`);
        out.push(`<text x="${(x + w + 4).toFixed(1)}" y="${top + 12}">${escape(panel.format(value))}</text>`);
      });
    });
    y += rows.length * rowHeight + 6;
  }
  y += 20;
  const about = `${meta.startedAt} · ${meta.machine.cpu}, ${meta.machine.cores} cores · Node ${meta.versions.node} · median of ${meta.settings.rounds} round(s)`;
  out.push(`<text x="0" y="${y}" class="none">${escape(about)}</text>`);
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<style>.title{font-weight:bold}.head{font-weight:bold;fill:#333}.none{fill:#777}</style>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="0" y="20" font-size="16" font-weight="bold">routeguide benchmark: our server against its peers</text>`,
    ...out,
    `</svg>`,
    "",
  ].join("\n");
}
