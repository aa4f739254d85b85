// One self-contained HTML page of a run: its verdict tables, then every dashboard laid out on
// Grafana's 24-column grid, each panel drawn with uPlot (inlined, MIT) from the data the queries
// returned, the seed's thresholds as lines and the fault windows shaded. No network, no server:
// it opens from the run folder, and a browser check reads the state each panel ends in.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { ReviewDashboard } from "./query.js";

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
  /** Per row: false marks the row failed (shown red). */
  ok?: boolean[];
}

export interface ReportPage {
  title: string;
  verdict: "PASS" | "FAIL";
  subtitle: string;
  window: { start: number; end: number };
  tables: Table[];
  dashboards: ReviewDashboard[];
}

const require = createRequire(import.meta.url);
const asset = (file: string) => readFileSync(require.resolve(`uplot/dist/${file}`), "utf8");

const html = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

/** The grid's row height in pixels, as Grafana's. */
const ROW_PX = 30;

function table(t: Table): string {
  const rows = t.rows
    .map(
      (r, i) =>
        `<tr${t.ok?.[i] === false ? ' class="failed"' : ""}>${r.map((c) => `<td>${html(c)}</td>`).join("")}</tr>`,
    )
    .join("\n");
  return `<section class="table"><h2>${html(t.title)}</h2><table><thead><tr>${t.headers
    .map((h) => `<th>${html(h)}</th>`)
    .join("")}</tr></thead><tbody>${rows}</tbody></table></section>`;
}

function dashboard(d: ReviewDashboard): string {
  const cells = d.panels.map((p) => {
    const place = `grid-column:${p.gridPos.x + 1}/span ${p.gridPos.w};grid-row:${p.gridPos.y + 1}/span ${p.gridPos.h}`;
    if (p.type === "row") return `<h3 class="row" style="${place}">${html(p.title)}</h3>`;
    return `<figure class="panel" style="${place}" data-panel="${html(`${d.uid}/${p.id}`)}" data-title="${html(
      p.title,
    )}" data-dashboard="${html(d.title)}" data-state="pending"><figcaption title="${html(
      p.description ?? "",
    )}">${html(p.title)}</figcaption><div class="body"></div></figure>`;
  });
  return `<section class="dashboard"><h2>${html(d.title)}</h2><div class="grid">${cells.join("\n")}</div></section>`;
}

/** Runs in the page: draws every panel and marks each with the state it ended in. */
const CLIENT = String.raw`
const DATA = JSON.parse(document.getElementById("review-data").textContent);
const COLORS = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0", "#508642", "#cca300"];
const SI = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
const si = (v, suffix) => {
  for (const [f, p] of SI) if (Math.abs(v) >= f) return (v / f).toFixed(2).replace(/\.?0+$/, "") + " " + p + suffix;
  return (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2)).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "") + (suffix ? " " + suffix : "");
};
const bytes = (v, suffix) => {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(i ? 1 : 0) + " " + units[i] + suffix;
};
function format(unit, v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  switch (unit) {
    case "percentunit": return (v * 100).toFixed(Math.abs(v) < 0.1 ? 2 : 1) + " %";
    case "s": return Math.abs(v) >= 1 ? v.toFixed(2) + " s" : Math.abs(v) >= 0.001 ? (v * 1000).toFixed(1) + " ms" : (v * 1e6).toFixed(0) + " µs";
    case "bytes": return bytes(v, "");
    case "Bps": return bytes(v, "/s");
    case "bool_yes_no": return v >= 0.5 ? "Yes" : "No";
    case "bool_on_off": return v >= 0.5 ? "On" : "Off";
    case "reqps": return si(v, "req/s");
    case "ops": return si(v, "ops/s");
    case "eps": return si(v, "/s");
    case "cps": return si(v, "/s");
    case "epm": return si(v, "/min");
    default: return si(v, "");
  }
}
const withData = (p) => p.series.filter((s) => s.points.some((pt) => pt[1] !== null));
const lastValue = (s) => { for (let i = s.points.length - 1; i >= 0; i--) if (s.points[i][1] !== null) return s.points[i][1]; return null; };
const colorOf = (p, v) => { let c = "#73bf69"; for (const t of p.thresholds) if (v >= t.value) c = t.color === "orange" ? "#ff9830" : t.color === "red" ? "#f2495c" : t.color; return c; };

function aligned(series) {
  const times = [...new Set(series.flatMap((s) => s.points.map((pt) => pt[0])))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  return [times, ...series.map((s) => { const ys = new Array(times.length).fill(null); for (const [t, v] of s.points) ys[index.get(t)] = v; return ys; })];
}

function timeseries(p, d, body) {
  const series = withData(p);
  const shade = (u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = "rgba(242, 73, 92, 0.18)";
    for (const r of d.regions) {
      const x0 = u.valToPos(r.from, "x", true), x1 = u.valToPos(r.to, "x", true);
      ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
    }
    ctx.restore();
  };
  const lines = (u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 1.5;
    for (const t of p.thresholds) {
      const y = u.valToPos(t.value, "y", true);
      if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
      ctx.strokeStyle = colorOf(p, t.value);
      ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
    }
    ctx.restore();
  };
  const legendHeight = 24 + 16 * Math.min(series.length, 4);
  const opts = {
    width: body.clientWidth,
    height: Math.max(120, body.clientHeight - legendHeight),
    scales: {
      x: { time: true, range: () => [DATA.window.start, DATA.window.end] },
      y: { range: (u, lo, hi) => {
        const th = p.thresholds.map((t) => t.value).filter((v) => v <= Math.max(hi, 0) * 2.5);
        const min = p.min ?? Math.min(0, lo);
        const top = Math.max(hi, ...th);
        // A flat line (an empty journal) still gets an axis of one unit, not of a billionth.
        const max = p.max ?? (top > min ? top * 1.1 : min + 1);
        return [min, max];
      } },
    },
    axes: [
      { stroke: "#ccc", grid: { stroke: "#333" } },
      {
        stroke: "#ccc", grid: { stroke: "#333" }, size: 86,
        // A yes/no panel has two values: ticks in between would repeat the labels.
        ...(p.unit && p.unit.startsWith("bool") && { splits: () => [0, 1] }),
        values: (u, vals) => vals.map((v) => format(p.unit, v)),
      },
    ],
    series: [{}, ...series.map((s, i) => ({ label: s.name, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, value: (u, v) => format(p.unit, v) }))],
    hooks: { drawClear: [shade], draw: [lines] },
    legend: { live: false },
  };
  new uPlot(opts, aligned(series), body);
  return body.querySelector("canvas") !== null;
}

function stat(p, body) {
  const series = withData(p);
  for (const s of series.slice(0, 4)) {
    const v = lastValue(s);
    const el = document.createElement("div");
    el.className = "stat";
    el.style.color = p.thresholds.length ? colorOf(p, v) : "#6ed0e0";
    el.textContent = format(p.unit, v);
    if (series.length > 1) el.title = s.name;
    body.appendChild(el);
  }
  return body.querySelector(".stat") !== null;
}

for (const d of DATA.dashboards) {
  for (const p of d.panels) {
    if (p.type === "row") continue;
    const el = document.querySelector('[data-panel="' + d.uid + "/" + p.id + '"]');
    const body = el.querySelector(".body");
    el.dataset.series = String(withData(p).length);
    try {
      if (p.errors.length) { body.textContent = p.errors.join("; "); el.dataset.state = "error"; continue; }
      if (withData(p).length === 0) { body.textContent = "No data"; el.dataset.state = "empty"; continue; }
      el.dataset.state = (p.type === "stat" ? stat(p, body) : timeseries(p, d, body)) ? "drawn" : "blank";
    } catch (err) {
      el.dataset.state = "error";
      console.error("panel " + p.title + ": " + err.message);
    }
  }
}
document.body.dataset.ready = "true";
`;

const STYLE = `
body { background: #111217; color: #ccccdc; font: 13px/1.4 Inter, Helvetica, Arial, sans-serif; margin: 16px; }
h1 { font-size: 20px; margin: 0 0 4px; } h1 .PASS { color: #73bf69; } h1 .FAIL { color: #f2495c; }
h2 { font-size: 16px; margin: 24px 0 8px; } .subtitle { color: #8e8e9e; margin: 0 0 12px; }
table { border-collapse: collapse; width: 100%; } th, td { border-bottom: 1px solid #2c3235; padding: 3px 8px; text-align: left; vertical-align: top; }
tr.failed td { color: #f2495c; font-weight: bold; }
.grid { display: grid; grid-template-columns: repeat(24, 1fr); grid-auto-rows: ${ROW_PX}px; gap: 8px; }
.row { margin: 8px 0 0; font-size: 14px; align-self: end; border-bottom: 1px solid #2c3235; }
.panel { margin: 0; background: #181b1f; border: 1px solid #2c3235; border-radius: 2px; padding: 6px; display: flex; flex-direction: column; overflow: hidden; }
.panel figcaption { font-weight: 500; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.panel .body { flex: 1; min-height: 0; display: flex; flex-wrap: wrap; align-items: center; justify-content: center; gap: 12px; }
.panel[data-state="empty"] .body, .panel[data-state="error"] .body { color: #f2495c; }
.stat { font-size: 28px; font-weight: 500; }
.uplot { font-family: inherit; } .u-legend { font-size: 11px; text-align: left; max-height: 72px; overflow: auto; }
`;

export function renderReport(page: ReportPage): string {
  const data = JSON.stringify({ window: page.window, dashboards: page.dashboards }).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${html(page.title)}</title>
<style>${asset("uPlot.min.css")}</style><style>${STYLE}</style></head>
<body>
<h1>${html(page.title)}: <span class="${page.verdict}">${page.verdict}</span></h1>
<p class="subtitle">${html(page.subtitle)}</p>
${page.tables.map(table).join("\n")}
${page.dashboards.map(dashboard).join("\n")}
<script id="review-data" type="application/json">${data}</script>
<script>${asset("uPlot.iife.min.js")}</script>
<script>${CLIENT}</script>
</body></html>
`;
}
