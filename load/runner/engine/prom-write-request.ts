// Protobuf encoding of Prometheus' remote-write WriteRequest (prompb/remote.proto, types.proto):
//   WriteRequest { repeated TimeSeries timeseries = 1; }
//   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//   Label        { string name = 1; string value = 2; }
//   Sample       { double value = 1; int64 timestamp = 2; }

export interface TimeSeries {
  /** Sorted by name, including __name__. */
  labels: [string, string][];
  samples: { value: number; timestampMs: number }[];
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const utf8 = new TextEncoder();

class ProtoWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  /** Unsigned varint; plain arithmetic because timestamps exceed 32 bits. */
  private varint(n: number): void {
    this.reserve(10);
    let v = n;
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }

  private key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, WIRE_LENGTH_DELIMITED);
    this.varint(value.length);
    this.reserve(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  double(field: number, value: number): this {
    this.key(field, WIRE_FIXED64);
    this.reserve(8);
    new DataView(this.buf.buffer).setFloat64(this.len, value, true);
    this.len += 8;
    return this;
  }

  /** Non-negative int64 (timestamps in ms since the epoch). */
  int64(field: number, value: number): this {
    this.key(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export function encodeWriteRequest(series: TimeSeries[]): Uint8Array {
  const request = new ProtoWriter();
  for (const s of series) {
    const ts = new ProtoWriter();
    for (const [name, value] of s.labels) ts.bytes(1, new ProtoWriter().string(1, name).string(2, value).finish());
    for (const { value, timestampMs } of s.samples) {
      ts.bytes(2, new ProtoWriter().double(1, value).int64(2, timestampMs).finish());
    }
    request.bytes(1, ts.finish());
  }
  return request.finish();
}
