// The invariants an experiment names, each checked against real state at the end: the answers the
// load recorded, RemediationRequests in the API server, Redis, audit rows in PostgreSQL, and the
// gateway's counters as scraped by Prometheus.
import { readdirSync } from "node:fs";
import pg from "pg";
import { type Check, reconcile, remediationRequests } from "../../harness/src/invariants.js";
import { untilSettled } from "../../harness/src/poll.js";
import type { InvariantSpec } from "./experiment.js";
import type { Answer } from "./load.js";
import type { RunRecord } from "./runner.js";

/** The real state is sampled every second while it converges: the verdict (and the run) ends within a second of it. */
const SAMPLING = { intervalMs: 500, maxIntervalMs: 1_000 };
/**
 * How long the real state may stand still before a check settles on what it last saw. In every
 * chaos run in ci mode (2026-12-03, 17 settles) it never stood still for more than 1.7 s before
 * it matched; the longest known pause is the audit sender's 5 s backoff.
 */
const STALL_MS = 10_000;

const is2xx = (s: number) => s >= 200 && s < 300;

function p99(answers: Answer[]): number {
  if (answers.length === 0) return 0;
  const sorted = answers.map((a) => a.ms).sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] as number);
}

function statuses(answers: Answer[]): string {
  const counts: Record<string, number> = {};
  for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1;
  return Object.entries(counts)
    .map(([s, n]) => `${s === "0" ? "no answer" : s}: ${n}`)
    .join(", ");
}

async function gatewayCounter(run: RunRecord, promql: string): Promise<number> {
  const samples = await run.stack.prometheus.query(promql);
  return samples[0]?.value ?? 0;
}

/** Audit rows that arrived out of their signal's order (arrival id vs event timestamp), and the total. */
async function auditOrder(run: RunRecord): Promise<{ rows: number; outOfOrder: number }> {
  const client = new pg.Client({ connectionString: run.stack.dataStorage.postgres.getConnectionUri() });
  await client.connect();
  try {
    const { rows } = await client.query<{ rows: string; out_of_order: string }>(`
      SELECT count(*) AS rows, count(*) FILTER (WHERE prev > event_timestamp) AS out_of_order
      FROM (SELECT event_timestamp,
                   lag(event_timestamp) OVER (PARTITION BY correlation_id ORDER BY id) AS prev
            FROM audit_events) ordered`);
    return { rows: Number(rows[0]?.rows ?? 0), outOfOrder: Number(rows[0]?.out_of_order ?? 0) };
  } finally {
    await client.end();
  }
}

/** Values of one PromQL series over [from, to] as [epoch ms, value], oldest first. */
async function promSeries(run: RunRecord, promql: string, from: number, to: number): Promise<Array<[number, number]>> {
  // A quarter of the 1 s scrape interval: a change shows at the scrape that saw it.
  const series = await run.stack.prometheus.queryRange(promql, {
    start: new Date(from),
    end: new Date(Math.max(to, from + 1000)),
    stepSeconds: 0.25,
  });
  return (series[0]?.values ?? []).map(([t, v]) => [t * 1000, v]);
}

const KUBE_FAULTS = ["stop-kube-apiserver", "restart-etcd"];

/**
 * Audit accounting at the event level, the level at which the gateway counts drops (its dropped
 * counter has only a reason label): each signal answered 2xx made two events (received, then
 * created / deduplicated / storm_detected), each storm request one more (crd.created). Every one
 * must be a row in Data Storage or counted as dropped. A signal that got no 2xx may have made up to
 * two events: that is the only slack. Waits while the gateway still replays its journal.
 */
async function auditDropsCounted(
  run: RunRecord,
  minDropped: number,
  checks: Check[],
  figures: Record<string, number | string>,
) {
  const { counts, answers, otherOutcomes } = run.load;
  const signals = counts.created + counts.duplicate + counts.stormAggregated;
  const uncertain =
    answers
      .filter((a) => a.kind === "valid" && (a.status < 200 || a.status >= 300))
      .reduce((n, a) => n + a.signals, 0) + Object.values(otherOutcomes).reduce((n, v) => n + v, 0);
  const gather = async (): Promise<Check[]> => {
    const storms = (await remediationRequests(run.stack.kube)).filter((rr) => rr.spec.isStorm).length;
    const made = 2 * signals + storms;
    const rows = (await run.stack.dataStorage.stats()).total;
    // The last value scraped, also when the gateway has died since (its series are stale then).
    const dropped = await gatewayCounter(run, "sum(max_over_time(gateway_audit_events_dropped_total[15m]))");
    const delivered = await gatewayCounter(run, "sum(max_over_time(gateway_audit_events_delivered_total[15m]))");
    const byReason = await run.stack.prometheus.query(
      "sum by (reason) (max_over_time(gateway_audit_events_dropped_total[15m]))",
    );
    figures["audit events dropped, by reason"] =
      byReason.map((s) => `${s.metric.reason}: ${s.value}`).join(", ") || "none";
    figures["audit rows in Data Storage"] = rows;
    return [
      {
        name: "audit events made (2 per signal answered 2xx + 1 per storm request) = rows in Data Storage + dropped (counted)",
        expected: uncertain > 0 ? `${made}..${made + 2 * uncertain}` : made,
        observed: `${rows} rows + ${dropped} dropped = ${rows + dropped}`,
        ok: rows + dropped >= made && rows + dropped <= made + 2 * uncertain,
      },
      {
        name: "gateway_audit_events_delivered_total = rows in Data Storage (none claimed delivered but missing, none stored twice)",
        expected: rows,
        observed: delivered,
        ok: delivered === rows,
      },
      {
        name: "audit events dropped and counted in gateway_audit_events_dropped_total",
        expected: `>= ${minDropped}`,
        observed: dropped,
        ok: dropped >= minDropped,
      },
    ];
  };
  checks.push(
    ...(await untilSettled(gather, (c) => c.every((x) => x.ok), { stallMs: STALL_MS, maxMs: 120_000, ...SAMPLING })),
  );
}

/**
 * For each API server / etcd fault: when, after its removal, the gateway's index followed the API
 * server again for good (the last out-of-sync scrape before the next fault, or the end), and when
 * the first signal was answered 201 (created).
 */
async function kubeResync(run: RunRecord, ms: number, checks: Check[], figures: Record<string, number | string>) {
  const faults = run.faults.filter((f) => KUBE_FAULTS.includes(f.kind));
  const first = faults[0];
  if (!first) throw new Error(`kube-resync: the experiment has no ${KUBE_FAULTS.join(" or ")} fault`);
  const end = Date.now();
  const synced = await promSeries(run, "min(gateway_rr_index_synced)", first.injectedAt, end);
  for (const f of faults) {
    const repeated = run.faults.filter((o) => o.name === f.name).length > 1;
    const label = repeated ? `${f.name} #${f.occurrence}` : f.name;
    const back = f.removedAt ?? end;
    const until = run.faults.find((o) => o.injectedAt > f.injectedAt)?.injectedAt ?? end;
    const during = synced.filter(([t]) => t >= f.injectedAt && t < back);
    const after = synced.filter(([t]) => t >= back && t <= until);
    const lastOut = after.findLastIndex(([, v]) => v !== 1);
    const resyncedAt = lastOut === after.length - 1 ? null : (after[lastOut + 1] as [number, number])[0];
    const resyncMs = resyncedAt === null ? null : Math.max(0, Math.round(resyncedAt - back));
    const created = run.load.answers
      .filter((a) => a.kind === "valid" && a.status === 201 && a.at + a.ms >= back && a.at + a.ms <= until)
      .map((a) => a.at + a.ms);
    const createdMs = created.length ? Math.round(Math.min(...created) - back) : null;
    figures[`${label}: index out of sync during the fault (s)`] = during.filter(([, v]) => v !== 1).length / 4;
    figures[`${label}: index resynced after the removal (ms)`] = resyncMs ?? "not in sync again";
    figures[`${label}: first creation (201) after the removal (ms)`] = createdMs ?? "none";
    checks.push({
      name: `${label}: the gateway's index follows the API server again (gateway_rr_index_synced = 1) after the removal (ms)`,
      expected: `<= ${ms}`,
      observed: resyncMs ?? "not in sync again before the next fault or the end",
      ok: resyncMs !== null && resyncMs <= ms,
    });
    checks.push({
      name: `${label}: a new signal answered 201 (created) after the removal (ms)`,
      expected: `<= ${ms}`,
      observed: createdMs ?? "no creation before the next fault or the end",
      ok: createdMs !== null && createdMs <= ms,
    });
  }
}

/** Segment files left in the gateway's audit journal directory (undelivered events). */
function journalSegments(run: RunRecord): string[] {
  const dir = (run.stack.gateway?.getConfig().dataStorage as { journalDir?: string } | undefined)?.journalDir;
  if (!dir) throw new Error("audit-delivered: the gateway's configuration names no dataStorage.journalDir");
  try {
    return readdirSync(dir).filter((f) => f.endsWith(".jsonl"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

export async function evaluateInvariants(
  specs: InvariantSpec[],
  run: RunRecord,
): Promise<{ checks: Check[]; figures: Record<string, number | string> }> {
  const checks: Check[] = [];
  const figures: Record<string, number | string> = {};
  const valid = run.load.answers.filter((a) => a.kind === "valid");
  const scope = (during?: "fault" | "all") =>
    during === "all" ? valid : run.duringFaults().filter((a) => a.kind === "valid");
  for (const spec of specs) {
    switch (spec.kind) {
      case "accounting": {
        // A signal answered non-2xx (or "failed" in a 207) was received and audited all the same, and
        // may have been created before the error: the real state may be ahead by these as by the
        // unanswered ones (the lower bounds, which catch a lost signal, stay exact).
        const refused = valid.filter((a) => a.status !== 0 && !is2xx(a.status)).reduce((n, a) => n + a.signals, 0);
        const maybe = run.load.counts.unanswered + refused + (run.load.otherOutcomes.failed ?? 0);
        const seen = { ...run.load.counts, unanswered: maybe };
        const started = Date.now();
        checks.push(
          ...(await reconcile(run.stack, seen, { stallMs: STALL_MS, maxMs: 300_000, ...SAMPLING }, spec.mode)),
        );
        // The real state trails the answers (coalesced status writes, the audit buffer): how far.
        figures["accounting settled after (s)"] = Math.round((Date.now() - started) / 100) / 10;
        break;
      }
      case "answers": {
        const answers = spec.during === "fault" ? scope("fault") : valid;
        const considered = spec.includeUnanswered ? answers : answers.filter((a) => a.status !== 0);
        const wrong = considered.filter((a) => !spec.allowed.includes(a.status));
        const noRetryAfter = considered.filter((a) => spec.retryAfter?.includes(a.status) && !a.retryAfter);
        checks.push({
          name: `answers${spec.during === "fault" ? " during the faults" : ""} are only ${spec.allowed.join("/")}${spec.includeUnanswered ? "" : " (no answer counted separately)"}`,
          expected: "0 other answers",
          observed: wrong.length === 0 ? "0 other answers" : `${wrong.length} other (${statuses(wrong)})`,
          ok: wrong.length === 0,
        });
        if (spec.retryAfter?.length)
          checks.push({
            name: `every ${spec.retryAfter.join("/")} carries Retry-After`,
            expected: 0,
            observed: noRetryAfter.length,
            ok: noRetryAfter.length === 0,
          });
        figures["answers by status"] = statuses(valid);
        break;
      }
      case "max-latency": {
        const answered = scope(spec.during).filter((a) => a.status !== 0);
        const slowest = Math.round(Math.max(0, ...answered.map((a) => a.ms)));
        const unanswered = scope(spec.during).filter((a) => a.status === 0).length;
        checks.push({
          name: `no answer slower than ${spec.ms} ms${spec.during === "all" ? "" : " during the faults"}, none missing`,
          expected: `<= ${spec.ms} ms, 0 unanswered`,
          observed: `${slowest} ms, ${unanswered} unanswered`,
          ok: slowest <= spec.ms && unanswered === 0,
        });
        break;
      }
      case "recovers-within":
        checks.push({
          name: "answers all 2xx again after the fault was removed (ms)",
          expected: `<= ${spec.ms}`,
          observed: run.recovery.ms ?? `not within the ${run.recovery.waitedMs} ms waited`,
          ok: run.recovery.ms !== null && run.recovery.ms <= spec.ms,
        });
        break;
      case "gateway-not-restarted": {
        const gw = run.stack.gateway;
        const same = !!gw?.process.running && gw.process.pid === run.gatewayPid && !run.gatewayExit;
        checks.push({
          name: "the gateway process ran throughout (same pid, never exited)",
          expected: `pid ${run.gatewayPid} running`,
          observed: same ? `pid ${run.gatewayPid} running` : `exited ${JSON.stringify(run.gatewayExit ?? {})}`,
          ok: same,
        });
        break;
      }
      case "audit-delivered": {
        // Real state first: the journal drains at its own pace after the recovery.
        const left = await untilSettled(
          async () => journalSegments(run),
          (files) => files.length === 0,
          { stallMs: STALL_MS, maxMs: 120_000, ...SAMPLING },
        );
        checks.push({
          name: "audit journal segments left on disk (undelivered events)",
          expected: 0,
          observed: left.length === 0 ? 0 : `${left.length} (${left.slice(0, 3).join(", ")})`,
          ok: left.length === 0,
        });
        const received = (await run.stack.dataStorage.stats()).by_type["gateway.signal.received"] ?? 0;
        const answered = run.load.counts.created + run.load.counts.duplicate + run.load.counts.stormAggregated;
        checks.push({
          name: "gateway.signal.received rows in Data Storage >= signals answered 2xx (none dropped)",
          expected: `>= ${answered}`,
          observed: received,
          ok: received >= answered,
        });
        const dropped = await gatewayCounter(run, "sum(gateway_audit_events_dropped_total)");
        const order = await auditOrder(run);
        checks.push({
          name: "audit events dropped by the gateway (gateway_audit_events_dropped_total)",
          expected: 0,
          observed: dropped,
          ok: dropped === 0,
        });
        checks.push({
          name: "audit rows in Data Storage in their signal's order",
          expected: "0 out of order",
          observed: `${order.outOfOrder} out of order of ${order.rows}`,
          ok: order.outOfOrder === 0 && order.rows > 0,
        });
        break;
      }
      case "audit-drops-counted":
        await auditDropsCounted(run, spec.minDropped ?? 0, checks, figures);
        break;
      case "corrupt-rejected": {
        const corrupt = run.load.answers.filter((a) => a.kind === "corrupt");
        const answered = corrupt.filter((a) => a.status !== 0);
        const wrong = answered.filter((a) => a.status !== 400 || !a.contentType.startsWith("application/problem+json"));
        checks.push({
          name: "every corrupted body that got an answer got 400 application/problem+json",
          expected: `${answered.length} of ${answered.length} (at least 1)`,
          observed: `${answered.length - wrong.length} of ${answered.length}${wrong.length ? ` (others: ${statuses(wrong)})` : ""}`,
          ok: wrong.length === 0 && answered.length > 0,
        });
        figures["corrupted bodies sent"] = corrupt.length;
        figures["corrupted bodies cut off by the link (no answer)"] = corrupt.length - answered.length;
        break;
      }
      case "accepted-p99": {
        const accepted = scope(spec.during).filter((a) => is2xx(a.status));
        const observed = p99(accepted);
        checks.push({
          name: `accepted answers' p99${spec.during === "all" ? "" : " during the faults"} (ms)`,
          expected: `<= ${spec.ms}`,
          observed: accepted.length ? observed : "no accepted answers",
          ok: accepted.length > 0 && observed <= spec.ms,
        });
        break;
      }
      case "latency-near-baseline": {
        const base = p99(run.baseline.filter((a) => is2xx(a.status)));
        const during = p99(scope("fault").filter((a) => is2xx(a.status)));
        const bound = Math.round(base * spec.factor + spec.slackMs);
        figures["signal p99 before the faults (ms)"] = base;
        figures["signal p99 during the faults (ms)"] = during;
        checks.push({
          name: `signal latency p99 during the faults near the baseline (<= ${spec.factor} x baseline + ${spec.slackMs} ms)`,
          expected: `<= ${bound}`,
          observed: during,
          ok: during <= bound,
        });
        break;
      }
      case "oom-killed": {
        const kills = run.oomKills;
        figures["OOM kills in the gateway's memory cgroup"] = kills;
        const killed = kills > 0 || run.gatewayExit?.signal === "SIGKILL";
        checks.push({
          name: spec.expected ? "the gateway was OOM-killed" : "the gateway was not OOM-killed",
          expected: spec.expected ? "OOM-killed" : "0 OOM kills",
          observed: killed
            ? `OOM-killed (${kills} kill(s) in the cgroup, exit ${JSON.stringify(run.gatewayExit ?? {})})`
            : "0 OOM kills",
          ok: killed === spec.expected,
        });
        break;
      }
      case "rss-below":
        figures["gateway RSS peak (MiB, sampled every 2 s)"] = Math.round(run.peakRssBytes / 1048576);
        if (run.memoryMaxUsageBytes)
          figures["memory cgroup peak charge (MiB)"] = Math.round(run.memoryMaxUsageBytes / 1048576);
        checks.push({
          name: "gateway resident memory peak (MiB)",
          expected: `<= ${Math.round(spec.bytes / 1048576)}`,
          observed: Math.round(run.peakRssBytes / 1048576),
          ok: run.peakRssBytes <= spec.bytes,
        });
        break;
      case "kube-resync":
        await kubeResync(run, spec.ms, checks, figures);
        break;
      case "audit-journaled": {
        const from = Math.min(...run.faults.map((f) => f.injectedAt));
        const to = Math.max(...run.faults.map((f) => f.removedAt ?? Date.now()));
        const bytes = await promSeries(run, "max(gateway_audit_journal_bytes)", from, to);
        const peak = Math.max(0, ...bytes.map(([, v]) => v));
        figures["audit journal peak during the faults (bytes)"] = peak;
        checks.push({
          name: "the audit journal held events during the faults (gateway_audit_journal_bytes, Prometheus)",
          expected: "> 0 bytes",
          observed: `${peak} bytes at most (${bytes.length} samples)`,
          ok: peak > 0,
        });
        break;
      }
      case "shed-during-fault": {
        const shed = scope("fault").filter((a) => (a.status === 503 || a.status === 429) && a.retryAfter);
        checks.push({
          name: "requests shed with 503/429 + Retry-After during the fault",
          expected: `>= ${spec.min}`,
          observed: shed.length,
          ok: shed.length >= spec.min,
        });
        figures["shed answers' p99 (ms)"] = p99(shed);
        const { onset } = spec;
        const inOnset = (a: Answer) =>
          run.faults.some((f) => a.at >= f.injectedAt && a.at < f.injectedAt + (onset?.ms ?? 0));
        const bound = (name: string, answers: Answer[], ms: number) => {
          checks.push({
            name,
            expected: `<= ${ms}`,
            observed: answers.length ? p99(answers) : "none shed",
            ok: answers.length > 0 && p99(answers) <= ms,
          });
        };
        if (onset) {
          bound(
            `shed answers in a fault's first ${onset.ms / 1000} s: their p99 (ms)`,
            shed.filter(inOnset),
            onset.p99Ms,
          );
          if (spec.p99Ms !== undefined)
            bound(
              "shed answers came back quickly after that: their p99 (ms)",
              shed.filter((a) => !inOnset(a)),
              spec.p99Ms,
            );
        } else if (spec.p99Ms !== undefined) bound("shed answers came back quickly: their p99 (ms)", shed, spec.p99Ms);
        break;
      }
      case "status-during-fault": {
        const during = run.faults.filter((f) => f.name === spec.fault);
        const seen = valid.filter(
          (a) =>
            a.status === spec.status && during.some((f) => a.at >= f.injectedAt && a.at <= (f.removedAt ?? Date.now())),
        ).length;
        checks.push({
          name: `answers ${spec.status} to requests sent during "${spec.fault}"`,
          expected: `>= ${spec.min}`,
          observed: during.length === 0 ? "no fault of that name ran" : seen,
          ok: during.length > 0 && seen >= spec.min,
        });
        break;
      }
    }
  }
  return { checks, figures };
}
