import {
  type Bandwidth,
  type Latency,
  type Proxy as ServerProxy,
  type Slicer,
  type Timeout,
  type Toxic,
  type ToxicDirection,
  type ToxicType,
  Toxiproxy,
} from "toxiproxy-node-client";
import { binary } from "../paths.js";
import { freePort } from "../ports.js";
import { httpReady } from "../probes.js";
import { ManagedProcess } from "../supervisor.js";

/** What every Toxiproxy provider (local process or container) hands back. */
export interface StartedToxiproxy {
  /** http://host:port of the control API. */
  getApiUrl(): string;
  /** The toxiproxy-node-client for anything the verbs below do not cover. */
  client(): Toxiproxy;
  /** A proxy in front of `upstream` ("host:port"), listening on a port of its own. */
  createProxy(name: string, upstream: string): Promise<ToxicProxy>;
  /** Removes every toxic and re-enables every proxy. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Settings every toxic accepts besides its own attributes. */
export interface ToxicOptions {
  /** Default `<type>_<stream>`, the name Toxiproxy itself would give. */
  name?: string;
  /** downstream (server → client, default) or upstream (client → server). */
  stream?: ToxicDirection;
  /** Fraction of connections affected, 0..1 (default 1). */
  toxicity?: number;
}

/** Splits "host:port", naming the field when the value is not one. */
export function parseHostPort(field: string, value: string): { host: string; port: number } {
  const match = /^(.+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match?.[1] || port < 1 || port > 65535) {
    throw new Error(`${field} must be "host:port" with a port in 1..65535, got ${JSON.stringify(value)}`);
  }
  return { host: match[1], port };
}

/**
 * Runs one API call and, on failure, says which operation failed: the client
 * only reports the HTTP status, so the operation is the useful context.
 */
export async function explain<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new Error(`toxiproxy: ${operation} failed: ${(err as Error).message}`);
  }
}

/** Creates a proxy on the server after checking the name and upstream. */
export async function createServerProxy(
  api: Toxiproxy,
  name: string,
  listen: string,
  upstream: string,
): Promise<ServerProxy> {
  if (!/^[\w.-]+$/.test(name))
    throw new Error(`proxy name must be letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`);
  parseHostPort("upstream", upstream);
  return explain(`creating proxy "${name}" (listen ${listen}, upstream ${upstream})`, () =>
    api.createProxy({ name, listen, upstream }),
  );
}

/**
 * One proxy, with a verb per toxic. `host:port` is where clients connect,
 * which for a container is the mapped port, not the one Toxiproxy listens on.
 */
export class ToxicProxy {
  constructor(
    private proxy: ServerProxy,
    private readonly host: string,
    private readonly port: number,
  ) {}

  getName(): string {
    return this.proxy.name;
  }
  getListenHost(): string {
    return this.host;
  }
  getListenPort(): number {
    return this.port;
  }
  /** "host:port" for clients. */
  getListen(): string {
    return `${this.host}:${this.port}`;
  }
  getUpstream(): string {
    return this.proxy.upstream;
  }

  /** Delays data by latency ± jitter ms. */
  addLatency(options: { latency: number; jitter?: number } & ToxicOptions): Promise<Toxic<Latency>> {
    const { jitter = 0, ...rest } = options;
    return this.addToxic("latency", { ...rest, jitter });
  }
  /** Lets no data through and closes the connection after `timeout` ms (0: holds it open forever). */
  addTimeout(options: Timeout & ToxicOptions): Promise<Toxic<Timeout>> {
    return this.addToxic("timeout", options);
  }
  /** Resets connections (TCP RST) after `timeout` ms. */
  addResetPeer(options: { timeout: number } & ToxicOptions): Promise<Toxic<{ timeout: number }>> {
    return this.addToxic("reset_peer", options);
  }
  /** Closes a connection once `bytes` bytes went through it. */
  addLimitData(options: { bytes: number } & ToxicOptions): Promise<Toxic<{ bytes: number }>> {
    return this.addToxic("limit_data", options);
  }
  /** Caps throughput at `rate` KB/s. */
  addBandwidth(options: Bandwidth & ToxicOptions): Promise<Toxic<Bandwidth>> {
    return this.addToxic("bandwidth", options);
  }
  /** Cuts data into ~average_size-byte pieces, `delay` µs apart. */
  addSlicer(options: Slicer & ToxicOptions): Promise<Toxic<Slicer>> {
    return this.addToxic("slicer", options);
  }

  async removeToxic(name: string): Promise<void> {
    await explain(`removing toxic "${name}" from proxy "${this.proxy.name}"`, async () => {
      const toxic = await this.proxy.getToxic(name);
      await toxic.remove();
    });
  }

  /** Refuses new connections and drops open ones, as if the upstream went away. */
  disable(): Promise<void> {
    return this.setEnabled(false);
  }
  enable(): Promise<void> {
    return this.setEnabled(true);
  }

  /**
   * Closes every open connection (disable, then enable at once), so clients
   * reconnect through the toxics now in place, and leaves the proxy enabled.
   * Toxiproxy 2.12 also puts a toxic added later into open connections
   * (toxiproxy.test.ts measures both); this is for faults that must meet a
   * reconnect: ioredis asking Sentinel again, a TLS handshake, a pool
   * refilling, a fresh toxicity draw per connection. New connections are
   * refused for the few milliseconds in between.
   */
  async dropConnections(): Promise<void> {
    await this.disable();
    await this.enable();
  }

  private async setEnabled(enabled: boolean): Promise<void> {
    const { listen, upstream } = this.proxy;
    this.proxy = await explain(`${enabled ? "enabling" : "disabling"} proxy "${this.proxy.name}"`, () =>
      this.proxy.update({ enabled, listen, upstream }),
    );
  }

  private async addToxic<T extends object>(type: ToxicType, options: T & ToxicOptions): Promise<Toxic<T>> {
    const { name, stream = "downstream", toxicity = 1, ...attributes } = options;
    if (stream !== "downstream" && stream !== "upstream") {
      throw new Error(`${type} toxic: stream must be "downstream" or "upstream", got ${JSON.stringify(stream)}`);
    }
    if (!(toxicity >= 0 && toxicity <= 1)) {
      throw new Error(`${type} toxic: toxicity must be between 0 and 1, got ${JSON.stringify(toxicity)}`);
    }
    // Toxiproxy wants non-negative integers; a string or NaN would come back as a bare 400.
    for (const [key, value] of Object.entries(attributes)) {
      if (!Number.isInteger(value) || (value as number) < 0) {
        throw new Error(`${type} toxic: ${key} must be a non-negative integer, got ${JSON.stringify(value)}`);
      }
    }
    const toxicName = name ?? `${type}_${stream}`;
    return explain(`adding ${type} toxic "${toxicName}" to proxy "${this.proxy.name}"`, () =>
      this.proxy.addToxic<T>({ name: toxicName, type, stream, toxicity, attributes: attributes as T }),
    );
  }
}

/**
 * A real toxiproxy-server (pinned build in .tools/bin) on loopback.
 * `const toxiproxy = await new ToxiproxyServer().start()`
 */
export class ToxiproxyServer {
  async start(): Promise<StartedToxiproxyServer> {
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const proc = new ManagedProcess({
      name: `toxiproxy-${port}`,
      command: binary("toxiproxy-server"),
      args: ["-host", "127.0.0.1", "-port", String(port)],
      ready: () => httpReady(`${apiUrl}/version`),
      readyTimeoutMs: 15_000,
    });
    await proc.start();
    return new StartedToxiproxyServer(proc, apiUrl);
  }
}

export class StartedToxiproxyServer implements StartedToxiproxy {
  private readonly api: Toxiproxy;

  constructor(
    readonly process: ManagedProcess,
    private readonly apiUrl: string,
  ) {
    this.api = new Toxiproxy(apiUrl);
  }

  getApiUrl(): string {
    return this.apiUrl;
  }
  client(): Toxiproxy {
    return this.api;
  }

  async createProxy(name: string, upstream: string): Promise<ToxicProxy> {
    // Port 0: Toxiproxy binds a free port itself and reports it, so no port can be taken in between.
    const proxy = await createServerProxy(this.api, name, "127.0.0.1:0", upstream);
    return new ToxicProxy(proxy, "127.0.0.1", parseHostPort("listen", proxy.listen).port);
  }

  reset(): Promise<void> {
    return explain("reset", () => this.api.reset());
  }

  async stop(): Promise<void> {
    await this.process.stop();
  }
}
