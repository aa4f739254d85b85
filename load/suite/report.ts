// The human report of a load run: Markdown with the figures, thresholds,
// invariants, and an SVG chart of latency over time.
import type { Check } from "../../harness/src/invariants.js";

export interface ThresholdResult {
  metric: string;
  expression: string;
  observed: number | null;
  ok: boolean;
}

export interface Series {
  name: string;
  /** [unix seconds, milliseconds] */
  points: Array<[number, number]>;
}

export interface LoadSummary {
  scenario: string;
  runId: string;
  runner: string;
  target: string;
  startedAt: string;
  durationSeconds: number;
  exitCode: number;
  pass: boolean;
  figures: Record<string, number | null>;
  thresholds: ThresholdResult[];
  invariants: Check[];
  notes: string[];
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/** Shaded spans of time, e.g. the windows in which a chaos fault was active. */
export interface ChartBand {
  /** Unix seconds. */
  from: number;
  to: number;
  label: string;
}

/**
 * A small line chart (no dependencies): values (latency in ms by default) over seconds since the
 * start, with optional shaded bands.
 */
export function latencyChart(
  series: Series[],
  title: string,
  options: { unit?: string; bands?: ChartBand[] } = {},
): string {
  const width = 800;
  const height = 320;
  const pad = { left: 60, right: 20, top: 30, bottom: 40 };
  // histogram_quantile over an idle window yields NaN: such points are gaps, not values.
  const plotted = series.map((s) => ({
    ...s,
    points: s.points.filter(([t, v]) => Number.isFinite(t) && Number.isFinite(v)),
  }));
  const all = plotted.flatMap((s) => s.points);
  if (all.length === 0)
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="60"><text x="10" y="30">${title}: no data</text></svg>`;
  const bands = options.bands ?? [];
  const t0 = Math.min(...all.map((p) => p[0]), ...bands.map((b) => b.from));
  const t1 = Math.max(...all.map((p) => p[0]), ...bands.map((b) => b.to), t0 + 1);
  const yMax = Math.max(...all.map((p) => p[1]), 1) * 1.1;
  const x = (t: number) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v: number) => height - pad.bottom - (v / yMax) * (height - pad.top - pad.bottom);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * yMax);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${pad.left}" y="18" font-weight="bold">${title}</text>`,
    ...bands.map(
      (b) =>
        `<rect x="${x(b.from).toFixed(1)}" y="${pad.top}" width="${Math.max(1, x(b.to) - x(b.from)).toFixed(1)}" height="${height - pad.top - pad.bottom}" fill="#f4a582" fill-opacity="0.35"><title>${b.label}</title></rect>`,
    ),
    ...ticks.map(
      (v) =>
        `<line x1="${pad.left}" x2="${width - pad.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${pad.left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text>`,
    ),
    `<text x="${width / 2}" y="${height - 8}" text-anchor="middle">seconds since start (${Math.round(t1 - t0)} s)</text>`,
    `<text x="14" y="${height / 2}" transform="rotate(-90 14 ${height / 2})" text-anchor="middle">${options.unit ?? "ms"}</text>`,
  ];
  plotted.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const d = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${d}"/>`);
    parts.push(`<text x="${pad.left + 10}" y="${pad.top + 16 * (i + 1)}" fill="${color}">${s.name}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}

function fmt(v: number | string | null | undefined): string {
  if (v === null || v === undefined) return "n/a";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
  return v;
}

export function markdownReport(s: LoadSummary, chartFile: string | undefined): string {
  const lines = [
    `# Load run ${s.runId}: ${s.pass ? "PASS" : "FAIL"}`,
    "",
    `Scenario **${s.scenario}**, runner ${s.runner}, target ${s.target}, started ${s.startedAt}, ${s.durationSeconds} s, exit code ${s.exitCode}.`,
    "",
    "## Figures",
    "",
    "| figure | value |",
    "|---|---|",
    ...Object.entries(s.figures).map(([k, v]) => `| ${k} | ${fmt(v)} |`),
    "",
    "## Thresholds",
    "",
    "| metric | threshold | observed | result |",
    "|---|---|---|---|",
    ...s.thresholds.map(
      (t) => `| \`${t.metric}\` | \`${t.expression}\` | ${fmt(t.observed)} | ${t.ok ? "ok" : "**FAILED**"} |`,
    ),
    "",
    "## Invariants (checked against the real state)",
    "",
    "| invariant | expected | observed | result |",
    "|---|---|---|---|",
    ...s.invariants.map(
      (c) => `| ${c.name} | ${fmt(c.expected)} | ${fmt(c.observed)} | ${c.ok ? "ok" : "**FAILED**"} |`,
    ),
  ];
  if (chartFile) lines.push("", "## Latency over time", "", `![latency over time](${chartFile})`);
  if (s.notes.length) lines.push("", "## Notes", "", ...s.notes.map((n) => `- ${n}`));
  return `${lines.join("\n")}\n`;
}
