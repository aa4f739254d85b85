// Worker half of the blocking http.request(): performs the request and wakes the blocked thread.
import { type MessagePort, workerData } from "node:worker_threads";
import { HttpClient, type HttpRequestSpec } from "./http-client.js";

const { port, flag, connections } = workerData as { port: MessagePort; flag: Int32Array; connections: number };
const client = new HttpClient(connections);

port.on("message", async (spec: HttpRequestSpec) => {
  const result = await client.perform(spec);
  port.postMessage({ result, timeOrigin: performance.timeOrigin });
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
});
