import {
  appendFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { AuditEvent } from "./audit-events.js";

const SEGMENT_BYTES = 1 << 20;
/** Appended per write: on a full disk, whatever fit before the failing write is kept. */
const CHUNK_BYTES = 16 << 10;
/** Segment numbers start high so a batch can be put in front of the oldest one (see prepend). */
const FIRST_SEGMENT = 1_000_000_000_000;
const SEGMENT = /^seg-(\d{16})\.jsonl$/;
const CURSOR_FILE = "cursor.json";

const segmentName = (seq: number) => `seg-${String(seq).padStart(16, "0")}.jsonl`;

/** A write failed (disk full): `written` events before it are in the journal, none after. */
export class JournalWriteError extends Error {
  constructor(
    readonly written: number,
    cause: Error,
  ) {
    super(`audit journal write failed after ${written} event(s): ${cause.message}`);
  }
}

/**
 * The bounded on-disk spill of the audit buffer: append-only JSON-lines
 * segment files, read back oldest first. A cursor file remembers how far
 * segments were delivered, so a restart does not resend them.
 */
export class AuditJournal {
  private segments: number[] = [];
  private sizes = new Map<number, number>();
  /** Parsed lines of the head segment and how many of them were delivered. */
  private head: { seq: number; events: AuditEvent[]; delivered: number } | undefined;
  /** Delivered lines per partly delivered segment (two after a prepend), persisted in the cursor file. */
  private delivered = new Map<number, number>();

  constructor(private readonly dir: string) {}

  /** Picks up what an earlier run left behind. Throws when the directory is unusable. */
  open(): void {
    mkdirSync(this.dir, { recursive: true });
    for (const file of readdirSync(this.dir)) {
      const match = SEGMENT.exec(file);
      if (!match) continue;
      const seq = Number(match[1]);
      this.segments.push(seq);
      this.sizes.set(seq, statSync(join(this.dir, file)).size);
    }
    this.segments.sort((a, b) => a - b);
    try {
      const cursor = JSON.parse(readFileSync(join(this.dir, CURSOR_FILE), "utf8")) as Record<string, number>;
      for (const [seq, count] of Object.entries(cursor))
        if (this.sizes.has(Number(seq))) this.delivered.set(Number(seq), count);
    } catch {
      // no cursor: every segment starts at its first line
    }
  }

  bytes(): number {
    let total = 0;
    for (const size of this.sizes.values()) total += size;
    return total;
  }

  isEmpty(): boolean {
    return this.segments.length === 0;
  }

  /**
   * Appends in order while the journal stays within `maxBytes`; returns how
   * many events were written (the rest did not fit). A failed write (disk
   * full) is cut back to the last whole chunk and throws JournalWriteError,
   * which says how many events made it: those are delivered later, so only
   * the rest may be counted as dropped.
   */
  append(events: AuditEvent[], maxBytes: number): number {
    let budget = maxBytes - this.bytes();
    let written = 0;
    let flushed = 0;
    let chunk = "";
    let chunkBytes = 0;
    let seq = this.segments.at(-1);
    const flush = () => {
      if (chunk === "" || seq === undefined) return;
      const file = join(this.dir, segmentName(seq));
      const size = this.sizes.get(seq) ?? 0;
      try {
        appendFileSync(file, chunk);
      } catch (err) {
        // A partial append would leave events on disk that the caller counts as dropped.
        try {
          if (size > 0) truncateSync(file, size);
          else {
            rmSync(file, { force: true });
            this.segments.pop();
            this.sizes.delete(seq);
          }
        } catch {}
        throw new JournalWriteError(flushed, err as Error);
      }
      this.sizes.set(seq, size + chunkBytes);
      flushed = written;
      chunk = "";
      chunkBytes = 0;
    };
    for (const event of events) {
      const line = `${JSON.stringify(event)}\n`;
      const size = Buffer.byteLength(line);
      if (size > budget) break;
      // The head segment is cached while it is read: never grow it behind the cache's back.
      const tailFull =
        seq === undefined || seq === this.head?.seq || (this.sizes.get(seq) ?? 0) + chunkBytes + size > SEGMENT_BYTES;
      if (tailFull) {
        flush();
        seq = seq === undefined ? FIRST_SEGMENT : seq + 1;
        this.segments.push(seq);
        this.sizes.set(seq, 0);
      }
      chunk += line;
      chunkBytes += size;
      budget -= size;
      written++;
      if (chunkBytes >= CHUNK_BYTES) flush();
    }
    flush();
    return written;
  }

  /**
   * Puts events in front of everything journaled (a batch that was being
   * sent when older-than-journal order had to be kept, e.g. at shutdown).
   */
  prepend(events: AuditEvent[]): void {
    if (events.length === 0) return;
    const seq = (this.segments[0] ?? FIRST_SEGMENT + 1) - 1;
    const text = events.map((e) => `${JSON.stringify(e)}\n`).join("");
    writeFileSync(join(this.dir, segmentName(seq)), text);
    this.segments.unshift(seq);
    this.sizes.set(seq, Buffer.byteLength(text));
    this.head = undefined;
  }

  /** The oldest undelivered events, at most `max`. */
  peek(max: number): AuditEvent[] {
    while (this.segments.length > 0) {
      if (!this.head || this.head.seq !== this.segments[0]) this.loadHead();
      const head = this.head as NonNullable<typeof this.head>;
      if (head.delivered < head.events.length) return head.events.slice(head.delivered, head.delivered + max);
      this.ack(0); // an empty or fully delivered segment: drop it
    }
    return [];
  }

  /**
   * The first `count` peeked events were delivered (or dropped for good).
   * Throws when the cursor cannot be saved (disk full): the journal moved on
   * in memory; a restart before the next save would resend those events.
   */
  ack(count: number): void {
    const head = this.head;
    if (!head) return;
    head.delivered += count;
    if (head.delivered < head.events.length) {
      this.delivered.set(head.seq, head.delivered);
    } else {
      rmSync(join(this.dir, segmentName(head.seq)), { force: true });
      this.segments.shift();
      this.sizes.delete(head.seq);
      this.delivered.delete(head.seq);
      this.head = undefined;
    }
    this.saveCursor();
  }

  private loadHead(): void {
    const seq = this.segments[0] as number;
    const text = readFileSync(join(this.dir, segmentName(seq)), "utf8");
    // A torn last line (crash mid-write) is skipped, not fatal.
    const events: AuditEvent[] = [];
    for (const line of text.split("\n")) {
      if (!line) continue;
      try {
        events.push(JSON.parse(line) as AuditEvent);
      } catch {}
    }
    this.head = { seq, events, delivered: Math.min(this.delivered.get(seq) ?? 0, events.length) };
  }

  private saveCursor(): void {
    if (this.delivered.size === 0) rmSync(join(this.dir, CURSOR_FILE), { force: true });
    else writeFileSync(join(this.dir, CURSOR_FILE), JSON.stringify(Object.fromEntries(this.delivered)));
  }
}
