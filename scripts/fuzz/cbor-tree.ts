/**
 * A CBOR syntax tree that can say what canonical DAG-CBOR cannot: non-minimal widths, indefinite
 * lengths, chunked strings, declared lengths that lie, duplicate or unsorted keys, any tag or
 * simple value, half and single floats. The fuzzer parses a seed into it, mutates it and encodes
 * it back byte for byte; with no mutation, encode(parse(b)) === b for any definite-length input.
 */

import { copy } from './copy.js'

/** Bytes of the head argument: 0 = in the initial byte (values < 24). */
export type Width = 0 | 1 | 2 | 4 | 8

/** Byte and text strings; `chunks` > 0 encodes them indefinite-length in that many chunks. */
export interface StringNode { kind: 'bytes' | 'text', value: Uint8Array, width?: Width, chunks?: number, lengthDelta?: number }
export interface ArrayNode { kind: 'array', items: CborNode[], width?: Width, indefinite?: boolean, lengthDelta?: number }
export interface MapNode { kind: 'map', entries: Array<[CborNode, CborNode]>, width?: Width, indefinite?: boolean, lengthDelta?: number }
export interface TagNode { kind: 'tag', tag: bigint, item: CborNode, width?: Width }
/** `item` behind verbatim heads (thousands of one-item arrays or maps): deep nesting without deep recursion. */
export interface PrefixNode { kind: 'prefix', prefix: Uint8Array, item: CborNode }

export type CborNode =
  | { kind: 'int', value: bigint, width?: Width }
  | StringNode
  | ArrayNode
  | MapNode
  | TagNode
  | PrefixNode
  | { kind: 'simple', value: number }
  | { kind: 'float', value: number, size: 2 | 4 | 8 }
  | { kind: 'raw', bytes: Uint8Array }

const MAX_U64 = (1n << 64n) - 1n

function minimalWidth (value: bigint): Width {
  if (value < 24n) return 0
  if (value < 0x100n) return 1
  if (value < 0x10000n) return 2
  if (value < 0x100000000n) return 4
  return 8
}

class Writer {
  private buf = new Uint8Array(256)
  private size = 0
  private room (n: number): void {
    if (this.size + n <= this.buf.length) return
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.size + n))
    next.set(this.buf.subarray(0, this.size))
    this.buf = next
  }

  byte (b: number): void { this.room(1); this.buf[this.size++] = b & 0xff }
  bytes (b: Uint8Array): void { this.room(b.length); this.buf.set(b, this.size); this.size += b.length }
  done (): Uint8Array { return this.buf.slice(0, this.size) }
}

function head (w: Writer, major: number, value: bigint, width?: Width): void {
  const v = value < 0n ? 0n : value > MAX_U64 ? MAX_U64 : value
  const min = minimalWidth(v)
  // A forced width that cannot hold the value falls back to the minimal one.
  const use: Width = width === undefined || width < min || (width === 0 && v >= 24n) ? min : width
  if (use === 0) { w.byte((major << 5) | Number(v)); return }
  const info = { 1: 24, 2: 25, 4: 26, 8: 27 }[use]
  w.byte((major << 5) | info)
  const out = new Uint8Array(use)
  let x = v
  for (let i = use - 1; i >= 0; i--) { out[i] = Number(x & 0xffn); x >>= 8n }
  w.bytes(out)
}

function halfBits (value: number): number {
  const f32 = new DataView(new ArrayBuffer(4))
  f32.setFloat32(0, value)
  const x = f32.getUint32(0)
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  const mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0)
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) return sign | (e < -10 ? 0 : ((mant | 0x800000) >> (1 - e + 13)))
  return sign | (e << 10) | (mant >> 13)
}

function encodeInto (w: Writer, node: CborNode): void {
  switch (node.kind) {
    case 'int':
      if (node.value >= 0n) head(w, 0, node.value, node.width)
      else head(w, 1, -1n - node.value, node.width)
      return
    case 'bytes': case 'text': {
      const major = node.kind === 'bytes' ? 2 : 3
      if (node.chunks !== undefined && node.chunks > 0) {
        w.byte((major << 5) | 31)
        const n = Math.min(node.chunks, Math.max(1, node.value.length))
        const step = Math.ceil(node.value.length / n)
        for (let at = 0; at < node.value.length || at === 0; at += Math.max(step, 1)) {
          const part = node.value.subarray(at, at + step)
          head(w, major, BigInt(part.length), node.width)
          w.bytes(part)
          if (node.value.length === 0) break
        }
        w.byte(0xff)
        return
      }
      head(w, major, BigInt(Math.max(0, node.value.length + (node.lengthDelta ?? 0))), node.width)
      w.bytes(node.value)
      return
    }
    case 'array':
      if (node.indefinite === true) w.byte(0x9f)
      else head(w, 4, BigInt(Math.max(0, node.items.length + (node.lengthDelta ?? 0))), node.width)
      for (const item of node.items) encodeInto(w, item)
      if (node.indefinite === true) w.byte(0xff)
      return
    case 'map':
      if (node.indefinite === true) w.byte(0xbf)
      else head(w, 5, BigInt(Math.max(0, node.entries.length + (node.lengthDelta ?? 0))), node.width)
      for (const [k, v] of node.entries) { encodeInto(w, k); encodeInto(w, v) }
      if (node.indefinite === true) w.byte(0xff)
      return
    case 'tag':
      head(w, 6, node.tag, node.width)
      encodeInto(w, node.item)
      return
    case 'simple':
      if (node.value < 24) w.byte(0xe0 | node.value)
      else { w.byte(0xf8); w.byte(node.value) }
      return
    case 'float': {
      const dv = new DataView(new ArrayBuffer(node.size))
      if (node.size === 2) dv.setUint16(0, halfBits(node.value))
      else if (node.size === 4) dv.setFloat32(0, node.value)
      else dv.setFloat64(0, node.value)
      w.byte(0xe0 | (node.size === 2 ? 25 : node.size === 4 ? 26 : 27))
      w.bytes(new Uint8Array(dv.buffer))
      return
    }
    case 'prefix':
      w.bytes(node.prefix)
      encodeInto(w, node.item)
      return
    case 'raw':
      w.bytes(node.bytes)
  }
}

export function encodeTree (node: CborNode): Uint8Array {
  const w = new Writer()
  encodeInto(w, node)
  return w.done()
}

class Reader {
  at = 0
  constructor (readonly b: Uint8Array) {}
  u8 (): number {
    if (this.at >= this.b.length) throw new Error('truncated')
    return this.b[this.at++] as number
  }

  arg (info: number): { value: bigint, width: Width } {
    if (info < 24) return { value: BigInt(info), width: 0 }
    const width = ({ 24: 1, 25: 2, 26: 4, 27: 8 } as Record<number, Width | undefined>)[info]
    if (width === undefined) throw new Error(`unsupported additional info ${info}`)
    let v = 0n
    for (let i = 0; i < width; i++) v = (v << 8n) | BigInt(this.u8())
    return { value: v, width }
  }

  take (n: number): Uint8Array {
    if (n > this.b.length - this.at) throw new Error('truncated')
    const out = copy(this.b, this.at, this.at + n)
    this.at += n
    return out
  }
}

const BREAK = Symbol('break')

function parseItem (r: Reader, depth: number): CborNode | typeof BREAK {
  if (depth > 256) throw new Error('too deep to parse')
  const initial = r.u8()
  const major = initial >> 5
  const info = initial & 31
  if (info === 31) {
    if (major === 7) return BREAK
    if (major === 2 || major === 3) {
      const parts: Uint8Array[] = []
      for (;;) {
        const part = parseItem(r, depth + 1)
        if (part === BREAK) break
        if (part.kind !== (major === 2 ? 'bytes' : 'text')) throw new Error('bad chunk')
        parts.push(part.value)
      }
      const value = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
      let at = 0
      for (const p of parts) { value.set(p, at); at += p.length }
      return { kind: major === 2 ? 'bytes' : 'text', value, chunks: Math.max(1, parts.length) }
    }
    if (major === 4) {
      const items: CborNode[] = []
      for (;;) { const it = parseItem(r, depth + 1); if (it === BREAK) break; items.push(it) }
      return { kind: 'array', items, indefinite: true }
    }
    if (major === 5) {
      const entries: Array<[CborNode, CborNode]> = []
      for (;;) {
        const k = parseItem(r, depth + 1)
        if (k === BREAK) break
        const v = parseItem(r, depth + 1)
        if (v === BREAK) throw new Error('break inside a map entry')
        entries.push([k, v])
      }
      return { kind: 'map', entries, indefinite: true }
    }
    throw new Error('bad indefinite item')
  }
  if (major === 7) {
    if (info < 24) return { kind: 'simple', value: info }
    if (info === 24) return { kind: 'simple', value: r.u8() }
    const size = info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0
    if (size === 0) throw new Error('reserved simple')
    const raw = r.take(size)
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.length)
    // Half floats are kept verbatim: their exact bits matter more than their value here.
    if (size === 2) return { kind: 'raw', bytes: Uint8Array.of(initial, ...raw) }
    return { kind: 'float', value: size === 4 ? dv.getFloat32(0) : dv.getFloat64(0), size }
  }
  const { value, width } = r.arg(info)
  const w = width === minimalWidth(value) ? {} : { width }
  switch (major) {
    case 0: return { kind: 'int', value, ...w }
    case 1: return { kind: 'int', value: -1n - value, ...w }
    case 2: case 3: return { kind: major === 2 ? 'bytes' : 'text', value: r.take(Number(value)), ...w }
    case 4: {
      const items: CborNode[] = []
      for (let i = 0n; i < value; i++) {
        const it = parseItem(r, depth + 1)
        if (it === BREAK) throw new Error('stray break')
        items.push(it)
      }
      return { kind: 'array', items, ...w }
    }
    case 5: {
      const entries: Array<[CborNode, CborNode]> = []
      for (let i = 0n; i < value; i++) {
        const k = parseItem(r, depth + 1)
        const v = parseItem(r, depth + 1)
        if (k === BREAK || v === BREAK) throw new Error('stray break')
        entries.push([k, v])
      }
      return { kind: 'map', entries, ...w }
    }
    default: {
      const item = parseItem(r, depth + 1)
      if (item === BREAK) throw new Error('stray break')
      return { kind: 'tag', tag: value, item, ...w }
    }
  }
}

/** Parses exactly one item; throws on anything it cannot represent (the fuzzer then mutates raw bytes). */
export function parseTree (bytes: Uint8Array): CborNode {
  const r = new Reader(bytes)
  const node = parseItem(r, 0)
  if (node === BREAK) throw new Error('stray break')
  if (r.at !== bytes.length) throw new Error('trailing bytes')
  return node
}

export function cloneTree (node: CborNode): CborNode {
  switch (node.kind) {
    case 'array': return { ...node, items: node.items.map(cloneTree) }
    case 'map': return { ...node, entries: node.entries.map(([k, v]) => [cloneTree(k), cloneTree(v)]) }
    case 'tag': return { ...node, item: cloneTree(node.item) }
    case 'prefix': return { ...node, item: cloneTree(node.item) }
    case 'bytes': case 'text': return { ...node, value: copy(node.value) }
    case 'raw': return { ...node, bytes: copy(node.bytes) }
    default: return { ...node }
  }
}

/** A place in the tree a node can be read from and replaced at. */
export interface Slot {
  node: CborNode
  depth: number
  role: 'root' | 'item' | 'key' | 'value' | 'tagged'
  parent?: CborNode
  set: (node: CborNode) => void
}

export function slots (root: CborNode, setRoot: (n: CborNode) => void): Slot[] {
  const out: Slot[] = []
  const visit = (node: CborNode, depth: number, role: Slot['role'], set: (n: CborNode) => void, parent?: CborNode): void => {
    out.push({ node, depth, role, set, ...(parent !== undefined ? { parent } : {}) })
    if (node.kind === 'array') node.items.forEach((it, i) => visit(it, depth + 1, 'item', (n) => { node.items[i] = n }, node))
    else if (node.kind === 'map') {
      node.entries.forEach((entry, i) => {
        visit(entry[0], depth + 1, 'key', (n) => { (node.entries[i] as [CborNode, CborNode])[0] = n }, node)
        visit(entry[1], depth + 1, 'value', (n) => { (node.entries[i] as [CborNode, CborNode])[1] = n }, node)
      })
    } else if (node.kind === 'tag' || node.kind === 'prefix') visit(node.item, depth + 1, 'tagged', (n) => { node.item = n }, node)
  }
  visit(root, 0, 'root', setRoot)
  return out
}

export const text = (s: string): CborNode => ({ kind: 'text', value: new TextEncoder().encode(s) })
export const int = (v: number | bigint): CborNode => ({ kind: 'int', value: BigInt(v) })
