/**
 * Data Storage stand-in, run as its own process by the harness
 * (`node --import tsx harness/src/data-storage/main.ts`).
 * Env: DATA_STORAGE_DATABASE_URL (postgres://...), DATA_STORAGE_PORT, DATA_STORAGE_HOST (default
 * 127.0.0.1; 0.0.0.0 in a pod: e2e/kind/data-storage.yaml, from the gateway's image).
 */
import pg from "pg";
import { buildApp } from "./app.js";
import { FaultSwitch } from "./fault.js";
import { EventStore } from "./store.js";

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`data-storage: environment variable ${name} is required`);
    process.exit(1);
  }
  return value;
}

const databaseUrl = requiredEnv("DATA_STORAGE_DATABASE_URL");
const port = Number(requiredEnv("DATA_STORAGE_PORT"));
const host = process.env.DATA_STORAGE_HOST || "127.0.0.1";

const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
// A connection lost while idle is replaced on next use; the write that needs it fails with a 500.
pool.on("error", (err) => console.error(`data-storage: idle PostgreSQL connection lost: ${err.message}`));

const store = new EventStore(pool);
try {
  await store.migrate();
} catch (err) {
  console.error(`data-storage: cannot create the audit_events table: ${(err as Error).message}`);
  process.exit(1);
}

const fault = new FaultSwitch();
const app = buildApp(store, fault);
await app.listen({ host, port });

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    await app.close();
    await pool.end();
    process.exit(0);
  });
}
