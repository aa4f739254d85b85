// The raw floor for the duplicate-path benchmark: the least work a webhook receiver backed by
// Redis can do. Fastify parses the JSON body and one HINCRBY counts the alert; nothing else.
// Whatever the gateway takes beyond this is the cost of its own pipeline.
//   REDIS_URL=redis://127.0.0.1:6379 PORT=8099 npx tsx load/bench/floor-server.ts
import Fastify from "fastify";
import { Redis } from "ioredis";

function setting(name: string, pattern: RegExp, example: string): string {
  const value = process.env[name] ?? "";
  if (!pattern.test(value)) {
    process.stderr.write(`error: ${name} must be ${example} (got: ${JSON.stringify(value)})\n`);
    process.exit(2);
  }
  return value;
}

const redisUrl = setting("REDIS_URL", /^rediss?:\/\/\S+$/, "a Redis URL like redis://127.0.0.1:6379");
const port = Number(setting("PORT", /^\d{1,5}$/, "a TCP port number"));

interface Webhook {
  alerts?: { labels?: { alertname?: string } }[];
}

const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
const app = Fastify({ logger: false, bodyLimit: 1 << 20 });

app.get("/healthz", async () => ({ status: "healthy" }));

app.post<{ Body: Webhook }>("/api/v1/signals/prometheus", async (request, reply) => {
  const alertname = request.body?.alerts?.[0]?.labels?.alertname;
  if (typeof alertname !== "string" || alertname === "") {
    return reply.code(400).send({ detail: "alerts[0].labels.alertname: required" });
  }
  const occurrenceCount = await redis.hincrby(`bench:floor:${alertname}`, "count", 1);
  return reply.code(202).send({ status: "duplicate", duplicate: true, occurrenceCount });
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    void app.close().finally(() => {
      redis.disconnect();
      process.exit(0);
    });
  });
}

await app.listen({ host: "127.0.0.1", port });
