import { RedisServer, type StartedRedis } from "../components/redis.js";
import { type StartedToxiproxy, ToxiproxyServer } from "../components/toxiproxy.js";

/** Where the harness gets Redis and Toxiproxy from. */
export interface Provider {
  readonly name: "local" | "containers";
  redis(options?: { password?: string }): Promise<StartedRedis>;
  toxiproxy(): Promise<StartedToxiproxy>;
}

/** Real processes on loopback (the default: needs no Docker). */
export const localProvider: Provider = {
  name: "local",
  redis: ({ password } = {}) => (password ? new RedisServer().withPassword(password) : new RedisServer()).start(),
  toxiproxy: () => new ToxiproxyServer().start(),
};

/** True when a Docker engine (as testcontainers finds it) answers within `timeoutMs`. */
export async function dockerAvailable(timeoutMs = 3000): Promise<boolean> {
  // Loaded here, not at the top: the local provider must not pay for testcontainers.
  const { getContainerRuntimeClient } = await import("testcontainers");
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([
      getContainerRuntimeClient().then(
        () => true,
        () => false,
      ),
      gaveUp,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The provider named by HARNESS_PROVIDER: "local" (default) or "containers". */
export async function provider(name = process.env.HARNESS_PROVIDER || "local"): Promise<Provider> {
  if (name === "local") return localProvider;
  if (name === "containers") {
    if (!(await dockerAvailable())) {
      throw new Error("HARNESS_PROVIDER=containers needs a Docker engine, and none answers on this machine");
    }
    return (await import("./containers.js")).containersProvider;
  }
  throw new Error(`HARNESS_PROVIDER must be "local" or "containers", got ${JSON.stringify(name)}`);
}
