import { RedisContainer, type StartedRedisContainer } from "@testcontainers/redis";
import { Redis } from "ioredis";
import { GenericContainer, type StartedTestContainer, TestContainers, Wait } from "testcontainers";
import { Toxiproxy } from "toxiproxy-node-client";
import type { StartedRedis } from "../components/redis.js";
import {
  createServerProxy,
  explain,
  parseHostPort,
  type StartedToxiproxy,
  ToxicProxy,
} from "../components/toxiproxy.js";
import type { Provider } from "./index.js";

/** Same major/minor as the local redis-server package, so both providers behave alike. */
export const REDIS_IMAGE = "redis:7.0.15";
export const TOXIPROXY_IMAGE = "ghcr.io/shopify/toxiproxy:2.12.0";

const API_PORT = 8474;
// Docker maps ports only when a container starts, so proxies listen on a pool exposed up front.
const PROXY_PORTS = Array.from({ length: 20 }, (_, i) => 8666 + i);
// The name under which containers reach this machine through testcontainers' port forwarder.
const HOST_FROM_CONTAINER = "host.testcontainers.internal";
const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "::1"]);

class RedisInContainer implements StartedRedis {
  constructor(
    private readonly container: StartedRedisContainer,
    private readonly password: string | undefined,
  ) {}

  getHost(): string {
    return this.container.getHost();
  }
  getPort(): number {
    return this.container.getPort();
  }
  getPassword(): string | undefined {
    return this.password;
  }
  getConnectionUrl(): string {
    return this.container.getConnectionUrl();
  }
  client(): Redis {
    return new Redis({ host: this.getHost(), port: this.getPort(), password: this.password });
  }
  async stop(): Promise<void> {
    await this.container.stop();
  }
}

class ToxiproxyInContainer implements StartedToxiproxy {
  private readonly api: Toxiproxy;
  private readonly unusedPorts = [...PROXY_PORTS];

  constructor(private readonly container: StartedTestContainer) {
    this.api = new Toxiproxy(this.getApiUrl());
  }

  getApiUrl(): string {
    return `http://${this.container.getHost()}:${this.container.getMappedPort(API_PORT)}`;
  }
  client(): Toxiproxy {
    return this.api;
  }

  async createProxy(name: string, upstream: string): Promise<ToxicProxy> {
    const { host, port } = parseHostPort("upstream", upstream);
    const listenPort = this.unusedPorts.shift();
    if (listenPort === undefined) {
      throw new Error(`toxiproxy container: all ${PROXY_PORTS.length} exposed proxy ports are taken`);
    }
    try {
      const proxy = await createServerProxy(this.api, name, `0.0.0.0:${listenPort}`, await this.reachable(host, port));
      return new ToxicProxy(proxy, this.container.getHost(), this.container.getMappedPort(listenPort));
    } catch (err) {
      this.unusedPorts.unshift(listenPort);
      throw err;
    }
  }

  reset(): Promise<void> {
    return explain("reset", () => this.api.reset());
  }

  async stop(): Promise<void> {
    await this.container.stop();
  }

  /** An upstream on this machine (including another container's mapped port) goes through the port forwarder. */
  private async reachable(host: string, port: number): Promise<string> {
    if (!LOCAL_HOSTS.has(host) && host !== this.container.getHost()) return `${host}:${port}`;
    await TestContainers.exposeHostPorts(port);
    return `${HOST_FROM_CONTAINER}:${port}`;
  }
}

/** Redis and Toxiproxy as Docker containers (testcontainers), behind the same interfaces as the local processes. */
export const containersProvider: Provider = {
  name: "containers",

  async redis({ password } = {}) {
    const builder = new RedisContainer(REDIS_IMAGE);
    const container = await (password ? builder.withPassword(password) : builder).start();
    return new RedisInContainer(container, password);
  },

  async toxiproxy() {
    // The forwarder must run before the container is created: only then does it get the host name.
    await TestContainers.exposeHostPorts();
    const container = await new GenericContainer(TOXIPROXY_IMAGE)
      .withExposedPorts(API_PORT, ...PROXY_PORTS)
      .withWaitStrategy(Wait.forHttp("/version", API_PORT))
      .start();
    return new ToxiproxyInContainer(container);
  },
};
