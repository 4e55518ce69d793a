/**
 * safetensors read/write: an 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the tensor bytes
 * (offsets count from the end of the header). F32/F16/BF16/F64 are read into Float32Array (F32 compute);
 * files are written as F32 (or F16/BF16 on request). Checkpoints may be sharded with
 * model.safetensors.index.json, as Hugging Face writes them. Every damage is reported with the file and
 * the byte offset.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, rmSync } from "node:fs";
import { endianness } from "node:os";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { readJsonFile } from "../util/files.js";

export type Dtype = "F32" | "F16" | "BF16" | "F64";
const BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const MAX_HEADER = 100 * 1024 * 1024;

if (endianness() !== "LE") throw new Error("dno's safetensors I/O assumes a little-endian CPU");

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** absolute byte range in the file */
  begin: number;
  end: number;
}

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** An open safetensors file: its validated header, and reads of single tensors. Close it when done. */
export class SafetensorsReader {
  readonly entries = new Map<string, TensorEntry>();
  readonly metadata: Record<string, string> = {};
  private fd: number;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, "r");
    } catch (e) {
      throw new DnoError(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    try {
      this.parseHeader();
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  private fail(message: string): never {
    throw new DnoError(`${this.path}: ${message}`);
  }

  private parseHeader(): void {
    const size = fstatSync(this.fd).size;
    if (size < 8) this.fail(`${size} bytes, too short for a safetensors header (truncated?)`);
    const lenBytes = Buffer.alloc(8);
    readSync(this.fd, lenBytes, 0, 8, 0);
    const n = Number(lenBytes.readBigUInt64LE(0));
    if (n > MAX_HEADER || 8 + n > size) {
      this.fail(
        `header length ${n} (bytes 0-7) runs past the end of the ${size}-byte file (truncated or not safetensors)`,
      );
    }
    const headerBytes = Buffer.alloc(n);
    readSync(this.fd, headerBytes, 0, n, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBytes.toString("utf8"));
    } catch (e) {
      this.fail(`header at bytes 8-${8 + n - 1} is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      this.fail("header at byte 8 is not a JSON object");
    }
    const dataStart = 8 + n;
    for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") {
        if (typeof info !== "object" || info === null || Array.isArray(info)) {
          this.fail("__metadata__ (header at byte 8) is not an object of strings");
        }
        for (const [k, v] of Object.entries(info)) {
          if (typeof v !== "string") this.fail(`__metadata__.${k} (header at byte 8) is not a string`);
          this.metadata[k] = v;
        }
        continue;
      }
      const where = `tensor ${JSON.stringify(name)} (header at byte 8)`;
      const i = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof i !== "object" || i === null) this.fail(`${where}: not an object`);
      if (typeof i.dtype !== "string" || !(i.dtype in BYTES)) {
        this.fail(`${where}: dtype ${JSON.stringify(i.dtype)} is not supported (F32, F16, BF16, F64)`);
      }
      const dtype = i.dtype as Dtype;
      const shape = i.shape;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
        this.fail(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
      }
      const off = i.data_offsets;
      if (
        !Array.isArray(off) ||
        off.length !== 2 ||
        !off.every((d) => Number.isInteger(d) && d >= 0) ||
        off[0] > off[1]
      ) {
        this.fail(`${where}: data_offsets ${JSON.stringify(off)} is not [begin, end]`);
      }
      const numel = (shape as number[]).reduce((a, b) => a * b, 1);
      if (off[1] - off[0] !== numel * BYTES[dtype]) {
        this.fail(
          `${where}: data_offsets [${off[0]}, ${off[1]}] hold ${off[1] - off[0]} bytes, but ${dtype} ${JSON.stringify(shape)} needs ${numel * BYTES[dtype]}`,
        );
      }
      const begin = dataStart + off[0];
      const end = dataStart + off[1];
      if (end > size) {
        this.fail(
          `${where}: its data, bytes ${begin}-${end - 1}, runs past the end of the ${size}-byte file (truncated)`,
        );
      }
      this.entries.set(name, { name, dtype, shape: shape as number[], begin, end });
    }
    this.checkLayout(dataStart, size);
  }

  /**
   * As the format requires: sorted by offset, the tensors' byte ranges follow each other without
   * overlap or hole, from the end of the header to the end of the file.
   */
  private checkLayout(dataStart: number, size: number): void {
    const sorted = [...this.entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
    let at = dataStart;
    let previous: TensorEntry | undefined;
    const range = (e: TensorEntry) => `tensor ${JSON.stringify(e.name)} (bytes ${e.begin}-${e.end - 1})`;
    for (const e of sorted) {
      if (e.begin < at) this.fail(`${range(e)} overlaps ${range(previous!)}`);
      if (e.begin > at) {
        this.fail(`bytes ${at}-${e.begin - 1} before ${range(e)} belong to no tensor (a hole in the data)`);
      }
      if (e.end > e.begin) {
        at = e.end;
        previous = e;
      }
    }
    if (at !== size) this.fail(`bytes ${at}-${size - 1} at the end belong to no tensor (trailing data)`);
  }

  /** The tensor converted to float32, into `out` (which must have its element count) or a new array. */
  read(name: string, out?: Float32Array): Float32Array {
    const e = this.entries.get(name);
    if (!e) this.fail(`no tensor ${JSON.stringify(name)}`);
    const numel = (e.end - e.begin) / BYTES[e.dtype];
    const dst = out ?? new Float32Array(numel);
    if (dst.length !== numel)
      this.fail(`tensor ${JSON.stringify(name)}: ${numel} elements, expected ${dst.length}`);
    if (e.dtype === "F32") {
      this.readBytes(e, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength));
      return dst;
    }
    const bytes = new Uint8Array(e.end - e.begin);
    this.readBytes(e, bytes);
    if (e.dtype === "F64") {
      const src = new Float64Array(bytes.buffer, 0, numel);
      for (let k = 0; k < numel; k++) dst[k] = src[k]!;
    } else {
      const src = new Uint16Array(bytes.buffer, 0, numel);
      if (e.dtype === "BF16") {
        const bits = new Uint32Array(dst.buffer, dst.byteOffset, numel);
        for (let k = 0; k < numel; k++) bits[k] = src[k]! << 16;
      } else {
        for (let k = 0; k < numel; k++) dst[k] = f16ToF32(src[k]!);
      }
    }
    return dst;
  }

  /** `read`, for weights: a NaN or infinite value (meaningless outputs downstream) is an error naming it. */
  readWeights(name: string, out?: Float32Array): Float32Array {
    const data = this.read(name, out);
    for (let k = 0; k < data.length; k++) {
      const x = data[k]!;
      if (x - x !== 0)
        this.fail(`tensor ${JSON.stringify(name)}: element ${k} is ${x}; weights must be finite`);
    }
    return data;
  }

  private readBytes(e: TensorEntry, into: Uint8Array): void {
    for (let done = 0; done < into.length; ) {
      const got = readSync(this.fd, into, done, into.length - done, e.begin + done);
      if (got === 0)
        this.fail(`tensor ${JSON.stringify(e.name)}: unexpected end of file at byte ${e.begin + done}`);
      done += got;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Every tensor of one file, as float32. */
export function readSafetensors(path: string): Map<string, NamedTensor> {
  const r = new SafetensorsReader(path);
  try {
    const out = new Map<string, NamedTensor>();
    for (const e of r.entries.values())
      out.set(e.name, { name: e.name, shape: e.shape, data: r.read(e.name) });
    return out;
  } finally {
    r.close();
  }
}

/** The bytes of a safetensors file holding `tensors` in order, stored as `dtype`. */
export function encodeSafetensors(
  tensors: NamedTensor[],
  dtype: Exclude<Dtype, "F64"> = "F32",
  metadata: Record<string, string> = {},
): Uint8Array[] {
  const header: Record<string, unknown> = { __metadata__: { format: "pt", ...metadata } };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const blob = encodeTensor(t.data, dtype);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + blob.length] };
    blobs.push(blob);
    offset += blob.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // tensor data starts 8-byte aligned
  const headerBytes = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  return [len, headerBytes, ...blobs];
}

/** Writes one safetensors file atomically. */
export function writeSafetensors(
  path: string,
  tensors: NamedTensor[],
  dtype: Exclude<Dtype, "F64"> = "F32",
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, dtype, metadata));
}

function encodeTensor(data: Float32Array, dtype: Exclude<Dtype, "F64">): Uint8Array {
  if (dtype === "F32") return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  if (dtype === "BF16") {
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let k = 0; k < data.length; k++) out[k] = f32BitsToBf16(bits[k]!);
  } else {
    for (let k = 0; k < data.length; k++) out[k] = f32ToF16(data[k]!);
  }
  return new Uint8Array(out.buffer);
}

const INDEX = "model.safetensors.index.json";
const SINGLE = "model.safetensors";

/**
 * The safetensors files of a checkpoint directory: model.safetensors, or the shards named by
 * model.safetensors.index.json. Calls visit(reader, names) per file with the tensor names it should
 * provide; closes each file after.
 */
export function forEachCheckpointFile(
  dir: string,
  visit: (reader: SafetensorsReader, names: string[]) => void,
): void {
  const single = join(dir, SINGLE);
  const indexPath = join(dir, INDEX);
  if (existsSync(single)) {
    const r = new SafetensorsReader(single);
    try {
      visit(r, [...r.entries.keys()]);
    } finally {
      r.close();
    }
    return;
  }
  if (!existsSync(indexPath)) throw new DnoError(`${dir}: has neither ${SINGLE} nor ${INDEX}`);
  const index = readJsonFile(indexPath) as { weight_map?: unknown };
  const map = index.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new DnoError(`${indexPath}: weight_map: expected an object {tensor name: shard file}`);
  }
  const byShard = new Map<string, string[]>();
  for (const [name, file] of Object.entries(map)) {
    if (typeof file !== "string" || file.includes("/") || file.includes("\\")) {
      throw new DnoError(`${indexPath}: weight_map.${name}: expected a file name in ${dir}`);
    }
    byShard.set(file, [...(byShard.get(file) ?? []), name]);
  }
  for (const [file, names] of byShard) {
    const r = new SafetensorsReader(join(dir, file));
    try {
      for (const name of names) {
        if (!r.entries.has(name)) throw new DnoError(`${indexPath}: weight_map.${name}: not in ${file}`);
      }
      visit(r, names);
    } finally {
      r.close();
    }
  }
}

/**
 * Saves tensors as DIR/model.safetensors, or, past maxShardBytes, as model-0000i-of-0000n.safetensors
 * shards with model.safetensors.index.json (as Hugging Face does). Removes the other layout's files.
 */
export function writeCheckpoint(dir: string, tensors: NamedTensor[], maxShardBytes = 4 * 1024 ** 3): void {
  const shards: NamedTensor[][] = [[]];
  let bytes = 0;
  let total = 0;
  for (const t of tensors) {
    const b = t.data.length * 4;
    if (bytes > 0 && bytes + b > maxShardBytes) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1]!.push(t);
    bytes += b;
    total += b;
  }
  const oldIndex = join(dir, INDEX);
  if (shards.length === 1) {
    writeSafetensors(join(dir, SINGLE), tensors);
    if (existsSync(oldIndex)) {
      for (const f of new Set(Object.values(JSON.parse(readFileSync(oldIndex, "utf8")).weight_map ?? {}))) {
        rmSync(join(dir, String(f)), { force: true });
      }
      rmSync(oldIndex);
    }
    return;
  }
  const pad = (i: number) => String(i).padStart(5, "0");
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const file = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
    writeSafetensors(join(dir, file), shard);
    for (const t of shard) weightMap[t.name] = file;
  });
  writeFileAtomic(
    oldIndex,
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
  );
  rmSync(join(dir, SINGLE), { force: true });
}

// --- half-precision conversions (round to nearest even) ---

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function f32ToF16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return (bits >>> 16) | 0x40;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}
