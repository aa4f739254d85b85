import { join } from "node:path";
import type { StoredEvent } from "../data-storage/events.js";
import type { FaultMode, FaultStatus } from "../data-storage/fault.js";
import type { EventQuery, EventStats } from "../data-storage/store.js";
import { repoRoot } from "../paths.js";
import { freePort } from "../ports.js";
import { httpReady } from "../probes.js";
import { ManagedProcess } from "../supervisor.js";
import { PostgresServer, type StartedPostgresServer } from "./postgres.js";

export type { EventQuery, EventStats, FaultMode, FaultStatus, StoredEvent };

const MAIN = join(repoRoot, "harness", "src", "data-storage", "main.ts");

/**
 * The Data Storage stand-in (audit API on PostgreSQL) as its own process,
 * started the way a user would start a service.
 * `const ds = await new DataStorageService().start()` starts its own PostgreSQL;
 * `.withPostgres(pg)` uses one the caller owns.
 */
export class DataStorageService {
  private postgres: StartedPostgresServer | undefined;

  withPostgres(postgres: StartedPostgresServer): this {
    this.postgres = postgres;
    return this;
  }

  async start(): Promise<StartedDataStorageService> {
    const ownsPostgres = !this.postgres;
    const postgres =
      this.postgres ??
      (await new PostgresServer().withDatabase("audit").withUser("datastorage", "datastorage").start());
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = new ManagedProcess({
      name: `data-storage-${port}`,
      command: process.execPath,
      args: ["--import", "tsx", MAIN],
      cwd: repoRoot,
      env: { DATA_STORAGE_DATABASE_URL: postgres.getConnectionUri(), DATA_STORAGE_PORT: String(port) },
      ready: () => httpReady(`${url}/healthz`),
      readyTimeoutMs: 30_000,
    });
    try {
      await proc.start();
    } catch (err) {
      if (ownsPostgres) await postgres.stop();
      throw err;
    }
    return new StartedDataStorageService(proc, url, postgres, ownsPostgres);
  }
}

/** Stored events of any Data Storage at `baseUrl` (the harness's, or a cluster's), in arrival order. */
export async function auditEvents(baseUrl: string, query: EventQuery = {}): Promise<StoredEvent[]> {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const res = await fetch(`${baseUrl}/api/v1/audit/events?${params}`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`Data Storage GET /api/v1/audit/events answered ${res.status}: ${text}`);
  return (JSON.parse(text) as { events: StoredEvent[] }).events;
}

export class StartedDataStorageService {
  constructor(
    readonly process: ManagedProcess,
    private readonly url: string,
    /** The PostgreSQL the events live in (for direct checks). */
    readonly postgres: StartedPostgresServer,
    private readonly ownsPostgres: boolean,
  ) {}

  getUrl(): string {
    return this.url;
  }

  /** Stored events in arrival order. */
  events(query: EventQuery = {}): Promise<StoredEvent[]> {
    return auditEvents(this.url, query);
  }

  /** Event counts by type. */
  async stats(): Promise<EventStats> {
    return this.call<EventStats>("/api/v1/audit/stats");
  }

  /** "fail": audit writes answer `status` (default 503); "stall": they hang; "none": back to normal. */
  async setFault(mode: FaultMode, status = 503): Promise<void> {
    await this.call("/admin/fault", { method: "POST", body: JSON.stringify({ mode, status }) });
  }

  /** The fault in force and how many writes it is holding. */
  async fault(): Promise<FaultStatus> {
    return this.call<FaultStatus>("/admin/fault");
  }

  private async call<T>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await fetch(`${this.url}${path}`, {
      ...init,
      headers: init.body ? { "content-type": "application/json" } : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`Data Storage ${init.method ?? "GET"} ${path} answered ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  /** Crash the service (SIGKILL); the events stay in PostgreSQL. */
  async kill(): Promise<void> {
    await this.process.kill();
  }

  /** Start again on the same port and database after a kill. */
  async start(): Promise<void> {
    await this.process.start();
  }

  /** Stops the service, and its PostgreSQL when it started it. */
  async stop(): Promise<void> {
    await this.process.stop();
    if (this.ownsPostgres) await this.postgres.stop();
  }
}
