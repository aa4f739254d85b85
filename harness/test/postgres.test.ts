import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresServer, type StartedPostgresServer } from "../src/components/postgres.js";

describe("PostgresServer (real postgres)", () => {
  let server: StartedPostgresServer;
  beforeAll(async () => {
    server = await new PostgresServer().withDatabase("audit").withUser("gw", "pw").start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("accepts a password login to the named database and runs queries", async () => {
    const client = new pg.Client({ connectionString: server.getConnectionUri() });
    await client.connect();
    const { rows } = await client.query<{ db: string; who: string }>(
      "SELECT current_database() AS db, current_user AS who",
    );
    expect(rows[0]).toEqual({ db: "audit", who: "gw" });
    await client.query("CREATE TABLE t (id serial PRIMARY KEY, v text)");
    await client.query("INSERT INTO t (v) VALUES ('a'), ('b')");
    expect((await client.query("SELECT v FROM t ORDER BY id")).rows.map((r) => r.v)).toEqual(["a", "b"]);
    await client.end();
  });

  it("rejects a wrong password over TCP", async () => {
    const bad = new pg.Client({ ...connectionOf(server), password: "wrong" });
    await expect(bad.connect()).rejects.toThrow(/password authentication failed/);
    await bad.end().catch(() => {});
  });

  it("keeps its data across a crash and a restart", async () => {
    await server.kill();
    expect(server.process.running).toBe(false);
    await server.start();
    await server.restart();
    const pool = server.pool({ max: 1 });
    expect((await pool.query("SELECT count(*)::int AS n FROM t")).rows[0].n).toBe(2);
    await pool.end();
  });
});

function connectionOf(s: StartedPostgresServer): pg.ClientConfig {
  return { host: s.getHost(), port: s.getPort(), user: s.getUsername(), database: s.getDatabase() };
}
