import { isUtf8 } from "node:buffer";
import { ProblemError } from "./types.js";

/**
 * Deepest nesting accepted. Real webhooks and events are < 10 levels deep;
 * the bound keeps hostile bodies away from recursive code (JSON.stringify,
 * schema validation) further down.
 */
export const MAX_JSON_DEPTH = 32;

class JsonSyntaxError extends Error {
  constructor(
    readonly reason: string,
    readonly position: number,
  ) {
    super(reason);
  }
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON strings must not contain raw control characters.
const PLAIN_STRING_RUN = /[^"\\\u0000-\u001f]*/y;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;

/**
 * A JSON grammar check that knows where it failed and how deep it is.
 * JSON.parse gives no position for most errors (and echoes the payload in its
 * message), so this runs first; recursion is bounded by the depth limit.
 */
class JsonScanner {
  private i = 0;

  constructor(
    private readonly s: string,
    private readonly maxDepth: number,
  ) {}

  check(): void {
    this.value(1);
    this.skipWhitespace();
    if (this.i < this.s.length) this.fail("unexpected data after the JSON value");
  }

  private fail(reason: string): never {
    throw new JsonSyntaxError(reason, this.i);
  }

  private skipWhitespace(): void {
    for (;;) {
      const c = this.s.charCodeAt(this.i);
      if (c !== 32 && c !== 9 && c !== 10 && c !== 13) return;
      this.i++;
    }
  }

  private value(depth: number): void {
    this.skipWhitespace();
    const c = this.s[this.i];
    if (c === "{" || c === "[") this.container(depth, c === "{");
    else if (c === '"') this.string();
    else if (c === "t" || c === "f" || c === "n") this.literal();
    else if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) this.number();
    else this.fail(c === undefined ? "unexpected end of input" : `unexpected character ${JSON.stringify(c)}`);
  }

  private container(depth: number, isObject: boolean): void {
    if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth} levels`);
    const close = isObject ? "}" : "]";
    this.i++;
    this.skipWhitespace();
    if (this.s[this.i] === close) {
      this.i++;
      return;
    }
    for (;;) {
      if (isObject) {
        this.skipWhitespace();
        if (this.s[this.i] !== '"') this.fail("expected a property name in double quotes");
        this.string();
        this.skipWhitespace();
        if (this.s[this.i] !== ":") this.fail("expected ':' after a property name");
        this.i++;
      }
      this.value(depth + 1);
      this.skipWhitespace();
      const c = this.s[this.i];
      if (c === close) {
        this.i++;
        return;
      }
      if (c !== ",") this.fail(c === undefined ? "unexpected end of input" : `expected ',' or '${close}'`);
      this.i++;
    }
  }

  private string(): void {
    this.i++;
    for (;;) {
      PLAIN_STRING_RUN.lastIndex = this.i;
      PLAIN_STRING_RUN.exec(this.s);
      this.i = PLAIN_STRING_RUN.lastIndex;
      const c = this.s[this.i];
      if (c === '"') {
        this.i++;
        return;
      }
      if (c === undefined) this.fail("unterminated string");
      if (c !== "\\") this.fail("control character in a string");
      ESCAPE.lastIndex = this.i;
      if (!ESCAPE.test(this.s)) this.fail("invalid escape sequence in a string");
      this.i = ESCAPE.lastIndex;
    }
  }

  private number(): void {
    NUMBER.lastIndex = this.i;
    if (!NUMBER.test(this.s)) this.fail("invalid number");
    this.i = NUMBER.lastIndex;
  }

  private literal(): void {
    const word = ["true", "false", "null"].find((w) => this.s.startsWith(w, this.i));
    if (!word) this.fail("invalid literal (expected true, false or null)");
    this.i += word.length;
  }
}

function lineAndColumn(text: string, position: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < position; i = text.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${position - lineStart + 1}`;
}

/** JSON.parse turns a "__proto__" key into an own property; we refuse it outright. */
function rejectProtoKeys(key: string, value: unknown): unknown {
  if (key === "__proto__") throw new ProblemError(400, 'request body contains the forbidden key "__proto__"');
  return value;
}

/**
 * Request body bytes → JSON value, or a 400 that says what is wrong and where
 * (never echoing the body).
 */
export function parseJsonBody(body: Buffer, maxDepth = MAX_JSON_DEPTH): unknown {
  if (body.length === 0) throw new ProblemError(400, "request body is empty; send a JSON object");
  if (!isUtf8(body)) throw new ProblemError(400, "request body is not valid UTF-8; send JSON encoded as UTF-8");
  let text = body.toString("utf8");
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    new JsonScanner(text, maxDepth).check();
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
    const where = `position ${err.position} (${lineAndColumn(text, err.position)})`;
    throw new ProblemError(400, `request body is not valid JSON: ${err.reason} at ${where}`);
  }
  // A "__proto__" key can only be spelled literally or with \u escapes.
  const suspicious = text.includes("__proto__") || text.includes("\\u");
  return suspicious ? JSON.parse(text, rejectProtoKeys) : JSON.parse(text);
}
