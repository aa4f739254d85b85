// k6's http.request()/get()/post() are synchronous. Node cannot block on I/O, so the request runs
// on a worker thread while this thread waits on Atomics.wait. That blocks every VU of the runner:
// fine for setup()/teardown() and low rates; load scripts use http.asyncRequest.
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import type { HttpRequestSpec, HttpResult } from "./http-client.js";

let channel: { worker: Worker; port: MessagePort; flag: Int32Array } | undefined;

function start(): NonNullable<typeof channel> {
  const { port1, port2 } = new MessageChannel();
  const flag = new Int32Array(new SharedArrayBuffer(4));
  // Workers on Node 20 do not inherit the TypeScript loader: a small ES module bootstrap registers
  // tsx in the worker before importing the TypeScript worker file.
  const bootstrap = `import { register } from ${JSON.stringify(import.meta.resolve("tsx/esm/api"))};
register();
await import(${JSON.stringify(new URL("./sync-http-worker.ts", import.meta.url).href)});`;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), {
    workerData: { port: port2, flag, connections: 4 },
    transferList: [port2],
  });
  worker.unref();
  return { worker, port: port1, flag };
}

export function performSync(spec: HttpRequestSpec): HttpResult {
  channel ??= start();
  const { port, flag } = channel;
  Atomics.store(flag, 0, 0);
  port.postMessage(spec);
  // The request's own timeout bounds the wait; the margin covers worker start-up.
  const woke = Atomics.wait(flag, 0, 0, spec.timeoutMs + 15_000);
  const message = receiveMessageOnPort(port)?.message as { result: HttpResult; timeOrigin: number } | undefined;
  if (woke === "timed-out" || !message)
    throw new Error(`synchronous ${spec.method} ${spec.url}: no answer from the request worker`);
  // Re-base the worker's clock on this thread's so durations from intended starts stay comparable.
  const shift = message.timeOrigin - performance.timeOrigin;
  return { ...message.result, startedMs: message.result.startedMs + shift, endedMs: message.result.endedMs + shift };
}

export async function stopSyncHttp(): Promise<void> {
  await channel?.worker.terminate();
  channel = undefined;
}
