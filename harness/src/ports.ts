import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const handedOut = new Set<number>();

/**
 * A picked port is bound by its owner only later (a process starting up). A port from the
 * kernel's ephemeral range could be taken meanwhile by any bind to port 0 or outgoing connection
 * on the machine (seen: kube-apiserver and the gateway failing with EADDRINUSE during a stack
 * start), so ports come from below that range, where the kernel hands out none by itself.
 */
const LOWEST = 20_000;
/** Another process's claim on a port is honoured this long: its owner has bound it by then. */
const CLAIM_MS = 60_000;
const CLAIMS = join(tmpdir(), "gw-port-claims");

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Claims `port` across processes (a file created exclusively); false while another process's claim is fresh. */
function claim(port: number): boolean {
  const file = join(CLAIMS, String(port));
  for (let tries = 0; tries < 2; tries++) {
    try {
      writeFileSync(file, String(process.pid), { flag: "wx" });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        mkdirSync(CLAIMS, { recursive: true });
        continue;
      }
      try {
        if (Date.now() - statSync(file).mtimeMs < CLAIM_MS) return false;
        rmSync(file, { force: true });
      } catch {
        // the claim vanished or changed meanwhile: try again
      }
    }
  }
  return false;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** The kernel's own pick (port 0): where the ephemeral range leaves no room below it. */
function kernelPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/** A free loopback TCP port, never the same one twice in this process nor in two processes at once. */
export async function freePort(): Promise<number> {
  const highest = ephemeralLow() - 1;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port =
      highest - LOWEST >= 1_000 ? LOWEST + Math.floor(Math.random() * (highest - LOWEST + 1)) : await kernelPort();
    if (handedOut.has(port) || !claim(port)) continue;
    if (!(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error("could not find a free loopback port after 200 attempts");
}
