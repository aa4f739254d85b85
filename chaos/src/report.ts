// The human report of a chaos run: per experiment its verdict, the faults with their windows,
// the probes' verdicts, the invariants (expected vs observed) and the figures; then the review,
// the Chaos dashboard over the run with the fault windows shaded (report.html, report.png).
import type { Review } from "../../grafana/src/report/review.js";
import { reviewSection } from "../../load/suite/report.js";
import type { ExperimentResult } from "./runner.js";

export interface ChaosSummary {
  runId: string;
  suite: string;
  parameters: Record<string, string | number>;
  startedAt: string;
  durationSeconds: number;
  pass: boolean;
  experiments: ExperimentResult[];
  /** The Chaos dashboard over the run (grafana/src/report), once every experiment has ended. */
  review?: Review;
}

const cell = (v: unknown) =>
  String(v ?? "")
    .replace(/\|/g, "\\|")
    .replace(/\n/g, " ");

function relative(result: ExperimentResult, epochMs: number | null): string {
  if (epochMs === null) return "-";
  return `${((epochMs - Date.parse(result.startedAt)) / 1000).toFixed(1)} s`;
}

export function markdownReport(summary: ChaosSummary): string {
  const lines = [
    `# Chaos run ${summary.runId}: ${summary.pass ? "PASS" : "FAIL"}`,
    "",
    `Suite **${summary.suite}**, parameters ${Object.entries(summary.parameters)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}, started ${summary.startedAt}, ${summary.durationSeconds} s.`,
    "",
    "| experiment | verdict | reason |",
    "|---|---|---|",
    ...summary.experiments.map((e) => `| ${e.name} | ${e.verdict} | ${cell(e.reason)} |`),
  ];
  for (const e of summary.experiments) {
    lines.push("", `## ${e.name}: ${e.verdict}`, "", e.description, "");
    if (e.reason) lines.push(`**Why it failed:** ${e.reason}`, "");
    lines.push(
      `Load ${e.load.rate}/s: ${e.load.sent} requests, ${e.load.dropped} dropped by the generator; answers ${cell(
        Object.entries(e.load.byStatus)
          .map(([s, n]) => `${s === "0" ? "none" : s}: ${n}`)
          .join(", "),
      )}. Recovery after the last fault: ${e.recovery.ms === null ? `not within the ${e.recovery.waitedMs} ms waited` : `${e.recovery.ms} ms`}.`,
      "",
    );
    if (e.faults.length) {
      lines.push(
        "| fault | # | injected | removed | unavailability window | non-2xx by status | figures |",
        "|---|---|---|---|---|---|---|",
        ...e.faults.map(
          (f) =>
            `| ${f.name} | ${f.occurrence} | ${relative(e, f.injectedAt)} | ${relative(e, f.removedAt)} | ${f.window ? `${f.window.ms} ms` : "none"} | ${cell(
              Object.entries(f.errorsByStatus)
                .map(([s, n]) => `${s === "0" ? "none" : s}: ${n}`)
                .join(", ") || "-",
            )} | ${cell(
              Object.entries(f.figures)
                .map(([k, v]) => `${k}: ${v}`)
                .join(", ") || (f.error ? `error: ${f.error}` : "-"),
            )} |`,
        ),
        "",
      );
      const reasons = e.faults.filter((f) => Object.keys(f.errorsByReason).length > 0);
      if (reasons.length)
        lines.push(
          "Non-2xx answers in each window, by reason:",
          "",
          ...reasons.map(
            (f) =>
              `- ${f.name} #${f.occurrence}: ${Object.entries(f.errorsByReason)
                .map(([r, n]) => `${n} x ${r}`)
                .join("; ")}`,
          ),
          "",
        );
    }
    if (e.probes.length) {
      lines.push(
        "| probe | type | mode | phase | verdict | evaluations (failed) | last seen | message |",
        "|---|---|---|---|---|---|---|---|",
        ...e.probes.map(
          (p) =>
            `| ${p.name} | ${p.type} | ${p.mode} | ${p.phase} | ${p.verdict} | ${p.evaluations} (${p.failedEvaluations}) | ${cell(p.lastSeen)} | ${cell(p.message)} |`,
        ),
        "",
      );
    }
    if (e.invariants.length) {
      lines.push(
        "| invariant | expected | observed | ok |",
        "|---|---|---|---|",
        ...e.invariants.map(
          (c) => `| ${cell(c.name)} | ${cell(c.expected)} | ${cell(c.observed)} | ${c.ok ? "yes" : "**NO**"} |`,
        ),
        "",
      );
    }
    const figures = Object.entries(e.figures);
    if (figures.length)
      lines.push("| figure | value |", "|---|---|", ...figures.map(([k, v]) => `| ${cell(k)} | ${cell(v)} |`), "");
    if (e.notes.length) lines.push(...e.notes.map((n) => `- ${n}`), "");
  }
  if (summary.review) lines.push(...reviewSection(summary.review));
  return `${lines.join("\n")}\n`;
}
