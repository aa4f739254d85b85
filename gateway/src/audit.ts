import { request } from "undici";
import type { AuditEvent } from "./audit-events.js";
import { AuditJournal, JournalWriteError } from "./audit-journal.js";
import type { Log } from "./log.js";
import type { Metrics } from "./metrics.js";
import { backoffDelay } from "./retry.js";
import type { GatewayConfig } from "./types.js";

const SEND_BACKOFF = { maxAttempts: Number.POSITIVE_INFINITY, initialBackoffMs: 100, maxBackoffMs: 5_000 };

type SendResult = "delivered" | "rejected" | "failed";

/**
 * Audit events to Data Storage (section 7), never in a signal's way:
 * `record` only appends to memory. One sender posts batches in order:
 *   1. the batch that failed last (taken from memory, so older than anything spilled since),
 *   2. the on-disk journal (everything spilled, oldest first),
 *   3. memory.
 * When memory is full, all of it moves to the end of the journal, so an
 * event in memory is always newer than every journaled one and nothing
 * overtakes older events. When the journal is full too, events are dropped
 * and counted by reason.
 */
export class AuditTrail {
  private memory: AuditEvent[] = [];
  private retryBatch: AuditEvent[] | undefined;
  private readonly journal: AuditJournal;
  private journalUsable = true;
  private sending: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  /** Aborts the send in flight when shutdown runs out of time. */
  private readonly abort = new AbortController();
  /** Ends a backoff pause early (shutdown). */
  private wake: (() => void) | undefined;

  constructor(
    private readonly config: () => GatewayConfig,
    private readonly metrics: Metrics,
    private readonly log: Log,
  ) {
    this.journal = new AuditJournal(config().dataStorage.journalDir);
  }

  /** Opens the journal (replaying what an earlier run left) and starts the flush timer. */
  start(): void {
    try {
      this.journal.open();
    } catch (err) {
      this.journalUsable = false;
      this.log.error(
        { err: (err as Error).message },
        "audit journal directory unusable; events that overflow memory will be dropped",
      );
    }
    this.updateGauges();
    const tick = () => {
      if (this.closing) return;
      this.kick();
      this.timer = setTimeout(tick, this.config().dataStorage.flushIntervalMs);
      this.timer.unref();
    };
    tick();
  }

  record(event: AuditEvent): void {
    const cfg = this.config().dataStorage;
    this.memory.push(event);
    if (this.memory.length >= cfg.bufferSize) this.spill(this.memory.splice(0));
    this.updateGauges();
    if (this.memory.length >= cfg.batchSize) this.kick();
  }

  /** Delivers what it can within shutdown.auditFlushTimeoutMs, journals the rest. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    this.wake?.();
    const budget = this.config().shutdown.auditFlushTimeoutMs;
    const timeout = setTimeout(() => this.abort.abort(), budget);
    try {
      await this.sending;
      await this.drain(Date.now() + budget);
    } finally {
      clearTimeout(timeout);
    }
    if (this.retryBatch && this.journalUsable) {
      try {
        this.journal.prepend(this.retryBatch);
        this.retryBatch = undefined;
      } catch (err) {
        this.log.error({ err: (err as Error).message }, "could not journal the undelivered audit batch");
      }
    }
    this.spill([...(this.retryBatch ?? []), ...this.memory.splice(0)]);
    this.retryBatch = undefined;
    this.updateGauges();
  }

  private kick(): void {
    this.sending ??= this.drain(Number.POSITIVE_INFINITY).finally(() => {
      this.sending = undefined;
    });
  }

  /** Sends batches until nothing is left or the deadline passes; failures back off and retry. */
  private async drain(deadline: number): Promise<void> {
    for (let failures = 0; Date.now() < deadline && !this.abort.signal.aborted; ) {
      const { batch, fromJournal } = this.nextBatch();
      if (batch.length === 0) return;
      const result = await this.send(batch);
      if (result === "failed") {
        if (!fromJournal) this.retryBatch = batch;
        this.updateGauges();
        if (this.closing) return; // shutting down: journal the rest instead of waiting for Data Storage
        await this.pause(Math.min(backoffDelay(SEND_BACKOFF, ++failures), Math.max(0, deadline - Date.now())));
        continue;
      }
      failures = 0;
      if (result === "rejected") this.metrics.auditEventsDropped.inc({ reason: "rejected" }, batch.length);
      else this.metrics.auditEventsDelivered.inc(batch.length);
      if (fromJournal) this.ackJournal(batch.length);
      this.updateGauges();
    }
  }

  private ackJournal(count: number): void {
    try {
      this.journal.ack(count);
    } catch (err) {
      this.log.warn(
        { err: (err as Error).message },
        "audit journal cursor not saved; a restart before the next save resends delivered events",
      );
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private nextBatch(): { batch: AuditEvent[]; fromJournal: boolean } {
    const size = this.config().dataStorage.batchSize;
    if (this.retryBatch) {
      const batch = this.retryBatch;
      this.retryBatch = undefined;
      return { batch, fromJournal: false };
    }
    if (this.journalUsable && !this.journal.isEmpty()) {
      try {
        return { batch: this.journal.peek(size), fromJournal: true };
      } catch (err) {
        this.journalUsable = false;
        this.log.error({ err: (err as Error).message }, "audit journal unreadable; replay stopped");
      }
    }
    return { batch: this.memory.splice(0, size), fromJournal: false };
  }

  private async send(batch: AuditEvent[]): Promise<SendResult> {
    const cfg = this.config().dataStorage;
    try {
      const res = await request(`${cfg.url}/api/v1/audit/events/batch`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(batch),
        signal: AbortSignal.any([AbortSignal.timeout(cfg.requestTimeoutMs), this.abort.signal]),
      });
      const text = await res.body.text();
      if (res.statusCode < 300) return "delivered";
      if (res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429) {
        this.log.error(
          { status: res.statusCode, detail: text.slice(0, 300), events: batch.length },
          "Data Storage rejected an audit batch; dropped",
        );
        return "rejected";
      }
      this.log.warn({ status: res.statusCode }, "audit batch not accepted; retrying");
      return "failed";
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "audit batch not delivered; retrying");
      return "failed";
    }
  }

  /** Moves events to the end of the journal; what does not fit is dropped and counted. */
  private spill(events: AuditEvent[]): void {
    if (events.length === 0) return;
    let written = 0;
    let reason = "journal_full";
    if (this.journalUsable) {
      try {
        written = this.journal.append(events, this.config().dataStorage.journalMaxBytes);
      } catch (err) {
        if (err instanceof JournalWriteError) written = err.written;
        reason = "journal_write_failed";
        this.log.error({ err: (err as Error).message }, "audit journal write failed");
      }
    } else {
      reason = "journal_unavailable";
    }
    if (written < events.length) this.metrics.auditEventsDropped.inc({ reason }, events.length - written);
  }

  private updateGauges(): void {
    this.metrics.auditBufferDepth.set(this.memory.length + (this.retryBatch?.length ?? 0));
    if (this.journalUsable) this.metrics.auditJournalBytes.set(this.journal.bytes());
  }
}
