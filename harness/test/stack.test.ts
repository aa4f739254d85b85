import { createServer, type Server } from "node:net";
import { afterAll, describe, expect, it, vi } from "vitest";
import { LocalStack, type StartedLocalStack } from "../src/stack.js";

describe("LocalStack", () => {
  let stack: StartedLocalStack | undefined;
  let squatter: Server | undefined;
  afterAll(async () => {
    await stack?.stop();
    squatter?.close();
  }, 120_000);

  it("starts its gateway on another port when the one it picked was taken meanwhile, and Prometheus scrapes it there", async () => {
    // What a bind to port 0 or an outgoing connection of a dependency can do between the pick and the gateway's listen.
    const server = createServer();
    squatter = server;
    const taken = await new Promise<number>((resolve) =>
      server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
    );
    const pick = vi
      .spyOn(LocalStack.prototype as unknown as { gatewayListenAddress(): Promise<string> }, "gatewayListenAddress")
      .mockResolvedValueOnce(`127.0.0.1:${taken}`);
    stack = await new LocalStack().start();
    expect(pick).toHaveBeenCalledTimes(1);
    const port = Number(new URL(stack.gateway?.getUrl() ?? "").port);
    expect(port).not.toBe(taken);
    const up = await stack.prometheus.waitForSeries('up{job="gateway"} == 1');
    expect(up[0]?.metric.instance).toBe(`127.0.0.1:${port}`);
  }, 120_000);
});
