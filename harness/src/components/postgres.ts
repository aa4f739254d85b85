import { execFile, execFileSync } from "node:child_process";
import { chownSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { binary, scratchDir } from "../paths.js";
import { freePort } from "../ports.js";
import { ManagedProcess } from "../supervisor.js";

const run = promisify(execFile);

/** The OS account that owns the cluster when the harness runs as root (created by the Debian package). */
const CLUSTER_OWNER = "postgres";

const runningAsRoot = process.getuid?.() === 0;

/**
 * initdb and postgres refuse to run as root. As root we drop to the `postgres`
 * account with `setpriv`: unlike `runuser`/`su` it execs in place (no PAM
 * session, no extra parent process), so the supervised pid is the postmaster
 * itself and signals reach it directly. As any other user nothing changes.
 */
function asClusterOwner(command: string, args: string[]): { command: string; args: string[] } {
  if (!runningAsRoot) return { command, args };
  return {
    command: binary("setpriv"),
    args: [`--reuid=${CLUSTER_OWNER}`, `--regid=${CLUSTER_OWNER}`, "--init-groups", "--", command, ...args],
  };
}

/** Hands root-created paths to the cluster owner (no-op when not root). */
function giveToClusterOwner(...paths: string[]): void {
  if (!runningAsRoot) return;
  // Node has no getpwnam; `id` is on every system.
  const uid = Number(execFileSync("id", ["-u", CLUSTER_OWNER], { encoding: "utf8" }));
  const gid = Number(execFileSync("id", ["-g", CLUSTER_OWNER], { encoding: "utf8" }));
  for (const path of paths) chownSync(path, uid, gid);
}

/**
 * A real PostgreSQL 15 server on loopback, in a scratch data directory.
 * `const pg = await new PostgresServer().withDatabase("audit").withUser("gw", "pw").start()`
 *
 * TCP logins use scram-sha-256 (a wrong password is refused); the Unix socket
 * in the scratch dir trusts local users. fsync and full page writes are off for
 * speed: they only protect against an OS crash. Commits stay synchronous so a
 * killed server (a process crash) recovers every committed row.
 */
export class PostgresServer {
  private database = "test";
  private user = "test";
  private password = "test";
  private port: number | undefined;

  withDatabase(name: string): this {
    this.database = name;
    return this;
  }

  /** The superuser created by initdb (like POSTGRES_USER/POSTGRES_PASSWORD in the container image). */
  withUser(name: string, password: string): this {
    this.user = name;
    this.password = password;
    return this;
  }

  /** Fixed port (default: a free one). */
  withPort(port: number): this {
    this.port = port;
    return this;
  }

  async start(): Promise<StartedPostgresServer> {
    const port = this.port ?? (await freePort());
    const dir = scratchDir("postgres");
    const dataDir = join(dir, "data");
    const pwFile = join(dir, "pwfile");
    writeFileSync(pwFile, `${this.password}\n`, { mode: 0o600 });
    giveToClusterOwner(dir, pwFile);
    try {
      const initdb = asClusterOwner(binary("initdb"), [
        `--pgdata=${dataDir}`,
        `--username=${this.user}`,
        `--pwfile=${pwFile}`,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--no-sync",
        "--no-instructions",
      ]);
      await run(initdb.command, initdb.args, { cwd: dir });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      const e = err as Error & { stderr?: string };
      throw new Error(`initdb failed: ${e.stderr?.trim() || e.message}`);
    } finally {
      rmSync(pwFile, { force: true });
    }

    // Settings as --name=value (any server setting can be given so).
    const postgres = asClusterOwner(binary("postgres"), [
      `-D${dataDir}`,
      `--port=${port}`,
      `--unix_socket_directories=${dir}`,
      "--listen_addresses=127.0.0.1",
      "--fsync=off",
      "--full_page_writes=off",
    ]);
    const login = { host: "127.0.0.1", port, user: this.user, password: this.password };
    const proc = new ManagedProcess({
      name: `postgres-${port}`,
      ...postgres,
      cwd: dir,
      // Ready means a real password login and query succeed, not just an open port.
      ready: () => canQuery({ ...login, database: "postgres" }),
      readyTimeoutMs: 30_000,
      stopSignal: "SIGINT", // "fast" shutdown: SIGTERM would wait for every client to disconnect
    });
    try {
      await proc.start();
      await createDatabaseIfMissing({ ...login, database: "postgres" }, this.database);
    } catch (err) {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return new StartedPostgresServer(proc, { ...login, database: this.database }, dir);
  }
}

async function canQuery(config: pg.ClientConfig): Promise<boolean> {
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } finally {
    await client.end().catch(() => {});
  }
}

async function createDatabaseIfMissing(config: pg.ClientConfig, database: string): Promise<void> {
  const client = new pg.Client(config);
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

export class StartedPostgresServer {
  constructor(
    readonly process: ManagedProcess,
    private readonly login: Required<Pick<pg.ClientConfig, "host" | "port" | "user" | "password" | "database">>,
    private readonly dir: string,
  ) {}

  getHost(): string {
    return this.login.host;
  }
  getPort(): number {
    return this.login.port;
  }
  getDatabase(): string {
    return this.login.database;
  }
  getUsername(): string {
    return this.login.user;
  }
  getPassword(): string {
    return String(this.login.password);
  }
  /** postgres://user:password@127.0.0.1:port/database */
  getConnectionUri(): string {
    const { user, password, host, port, database } = this.login;
    return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(String(password))}@${host}:${port}/${encodeURIComponent(database)}`;
  }

  /** A connected pg client (caller calls `end()`). */
  async client(): Promise<pg.Client> {
    const client = new pg.Client(this.login);
    // Killing or stopping the server is routine here; the connection-lost event
    // must not crash the test process (the next query still fails loudly).
    client.on("error", () => {});
    await client.connect();
    return client;
  }

  /** A pg pool (caller calls `end()`). */
  pool(options: pg.PoolConfig = {}): pg.Pool {
    const pool = new pg.Pool({ ...this.login, ...options });
    // An idle client whose server went away is dropped from the pool and the next
    // query reconnects; unhandled, the event would crash the test process.
    pool.on("error", () => {});
    return pool;
  }

  /** Crash it (SIGKILL to the postmaster and its backends). `start()` recovers the same data. */
  async kill(): Promise<void> {
    await this.process.kill();
  }

  /** Start again on the same port and data directory after a kill or restart. */
  async start(): Promise<void> {
    await this.process.start();
  }

  /** Clean shutdown and start, keeping the data. */
  async restart(): Promise<void> {
    await this.process.restart();
  }

  /** Shuts down and deletes the data directory: final. */
  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
