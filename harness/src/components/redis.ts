import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { binary, scratchDir } from "../paths.js";
import { freePort } from "../ports.js";
import { tcpReady } from "../probes.js";
import { ManagedProcess } from "../supervisor.js";

/** What every Redis provider (local process or container) hands back. */
export interface StartedRedis {
  getHost(): string;
  getPort(): number;
  getPassword(): string | undefined;
  /** redis://[:password@]host:port */
  getConnectionUrl(): string;
  /** A new ioredis client (caller closes it). */
  client(): Redis;
  stop(): Promise<void>;
}

/**
 * A real redis-server on loopback.
 * `const redis = await new RedisServer().withPassword("s3cret").start()`
 */
export class RedisServer {
  private password: string | undefined;
  private port: number | undefined;
  private extraConfig: string[] = [];

  withPassword(password: string): this {
    this.password = password;
    return this;
  }

  /** Fixed port (default: a free one). */
  withPort(port: number): this {
    this.port = port;
    return this;
  }

  /** Extra `--directive value` arguments, e.g. withConfig("maxmemory", "10mb"). */
  withConfig(directive: string, ...values: string[]): this {
    this.extraConfig.push(`--${directive}`, ...values);
    return this;
  }

  async start(): Promise<StartedRedisServer> {
    const port = this.port ?? (await freePort());
    const dir = scratchDir("redis");
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
      ...(this.password ? ["--requirepass", this.password, "--masterauth", this.password] : []),
      ...this.extraConfig,
    ];
    const proc = new ManagedProcess({
      name: `redis-${port}`,
      command: binary("redis-server"),
      args,
      ready: () => tcpReady(port),
      readyTimeoutMs: 15_000,
    });
    await proc.start();
    return new StartedRedisServer(proc, port, this.password, dir);
  }
}

export class StartedRedisServer implements StartedRedis {
  constructor(
    readonly process: ManagedProcess,
    private readonly port: number,
    private readonly password: string | undefined,
    private readonly dir: string,
  ) {}

  getHost(): string {
    return "127.0.0.1";
  }
  getPort(): number {
    return this.port;
  }
  getPassword(): string | undefined {
    return this.password;
  }
  getConnectionUrl(): string {
    return `redis://${this.password ? `:${encodeURIComponent(this.password)}@` : ""}127.0.0.1:${this.port}`;
  }
  client(): Redis {
    return new Redis({ host: "127.0.0.1", port: this.port, password: this.password, lazyConnect: false });
  }

  /** Crash it (SIGKILL). `start()` brings it back on the same port, empty. */
  async kill(): Promise<void> {
    await this.process.kill();
  }

  /**
   * Start again on the same port after a stop or kill, empty (as after a crash without
   * persistence: a replica keeps the RDB of its last full sync, which is removed), optionally
   * as a replica of `replicaOf`.
   */
  async start(replicaOf?: { host: string; port: number }): Promise<void> {
    for (const file of readdirSync(this.dir)) if (file.endsWith(".rdb")) rmSync(join(this.dir, file), { force: true });
    await this.process.start(replicaOf ? ["--replicaof", replicaOf.host, String(replicaOf.port)] : []);
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
