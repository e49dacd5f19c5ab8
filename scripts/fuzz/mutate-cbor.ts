/**
 * Structure-aware CBOR mutations: a seed is parsed into a syntax tree (cbor-tree.ts), one to three
 * operations change its keys, values, types, widths, lengths, tags or nesting, and the tree is
 * encoded back, followed now and then by raw byte damage. Operation names travel with each input
 * so a finding says how it was made.
 */
import { cloneTree, encodeTree, parseTree, slots, text, int, type CborNode, type MapNode, type Slot, type StringNode, type TagNode, type Width } from './cbor-tree.js'
import { mutateRaw } from './mutate-raw.js'
import { copy } from './copy.js'
import type { Rng } from './rng.js'

export interface Mutant {
  bytes: Uint8Array
  ops: string[]
  /** The mutant was re-signed by the seed's author: accepting it is no forgery. */
  resigned?: boolean
}

/** Keys that trip up JS objects, plus the envelope's own. */
const SPECIAL_KEYS = ['toString', 'valueOf', '__proto__', 'constructor', 'hasOwnProperty', 'then', 'toJSON', 'length', '$type', 'v', 'sig', '', 'a', '0', '\u0000', 'é', '$type\u0000']
const TAGS = [0n, 1n, 2n, 3n, 24n, 32n, 42n, 55799n, 0xffffffffn, (1n << 64n) - 1n]
const INTS = [0n, 1n, 23n, 24n, 255n, 256n, 65535n, 65536n, 0xffffffffn, 0x100000000n, 2n ** 53n - 1n, 2n ** 53n, (1n << 64n) - 1n, -1n, -24n, -25n, -(2n ** 53n), -(1n << 64n)]
const FLOATS = [0, -0, 1, 1.5, -1, Number.NaN, Infinity, -Infinity, 2 ** 53, 1e300, 5e-324]
const SIMPLES = [20, 21, 22, 23, 0, 19, 24, 31, 32, 255]
const NESTING = [1, 2, 4, 8, 15, 16, 17, 20, 64, 1000, 3500]

export interface CborMutatorInit {
  /** Subtrees of every seed of the target, to splice in. */
  donors: CborNode[]
  /** Keys of every seed's maps. */
  keys: string[]
}

export function collectDonors (trees: CborNode[]): CborMutatorInit {
  const donors: CborNode[] = []
  const keys = new Set<string>()
  for (const tree of trees) {
    for (const s of slots(tree, () => {})) {
      donors.push(s.node)
      if (s.role === 'key' && s.node.kind === 'text') keys.add(new TextDecoder().decode(s.node.value))
    }
  }
  return { donors, keys: [...keys] }
}

function randomNode (rng: Rng, init: CborMutatorInit, except?: CborNode['kind']): CborNode {
  for (;;) {
    const kind = rng.pick(['int', 'bytes', 'text', 'array', 'map', 'tag', 'simple', 'float', 'donor'] as const)
    if (kind === except) continue
    switch (kind) {
      case 'int': return { kind: 'int', value: rng.pick(INTS) }
      case 'bytes': return { kind: 'bytes', value: rng.bytes(rng.pick([0, 1, 31, 32, 33, 64, 65, 300])) }
      case 'text': return text(rng.pick([...SPECIAL_KEYS, ...init.keys, 'did:key:z6Mk', 'x'.repeat(rng.pick([1, 64, 65, 300]))]))
      case 'array': return { kind: 'array', items: Array.from({ length: rng.int(3) }, () => int(rng.int(30))) }
      case 'map': return { kind: 'map', entries: [[text(rng.pick(SPECIAL_KEYS)), int(rng.int(30))]] }
      case 'tag': return { kind: 'tag', tag: rng.pick(TAGS), item: { kind: 'bytes', value: rng.bytes(rng.pick([0, 1, 36, 37])) } }
      case 'simple': return { kind: 'simple', value: rng.pick(SIMPLES) }
      case 'float': return { kind: 'float', value: rng.pick(FLOATS), size: rng.pick([2, 4, 8] as const) }
      case 'donor': if (init.donors.length > 0) return cloneTree(rng.pick(init.donors)); continue
    }
  }
}

function widerThanMinimal (rng: Rng, value: bigint): Width | undefined {
  const minimal = value < 24n ? 0 : value < 0x100n ? 1 : value < 0x10000n ? 2 : value < 0x100000000n ? 4 : 8
  const wider = ([1, 2, 4, 8] as Width[]).filter((w) => w > minimal)
  return wider.length > 0 ? rng.pick(wider) : undefined
}

function headValue (node: CborNode): bigint | undefined {
  switch (node.kind) {
    case 'int': return node.value >= 0n ? node.value : -1n - node.value
    case 'bytes': case 'text': return BigInt(node.value.length)
    case 'array': return BigInt(node.items.length)
    case 'map': return BigInt(node.entries.length)
    case 'tag': return node.tag
    default: return undefined
  }
}

function wrap (node: CborNode, depth: number, asMap: boolean): CborNode {
  if (depth > 32) {
    // Verbatim heads: a tree thousands deep would overflow the fuzzer's own recursion.
    const unit = asMap ? [0xa1, 0x61, 0x61] : [0x81]
    const prefix = new Uint8Array(depth * unit.length)
    for (let i = 0; i < prefix.length; i++) prefix[i] = unit[i % unit.length] as number
    return { kind: 'prefix', prefix, item: node }
  }
  let out = node
  for (let i = 0; i < depth; i++) out = asMap ? { kind: 'map', entries: [[text('a'), out]] } : { kind: 'array', items: [out] }
  return out
}

/** One structural operation on the tree behind `slot`; returns its name, or undefined when it did not apply. */
function structural (rng: Rng, all: Slot[], init: CborMutatorInit): string | undefined {
  const slot = rng.pick(all)
  const node = slot.node
  const op = rng.int(20)
  switch (op) {
    case 0: { // rename a map key
      const keySlot = all.filter((s) => s.role === 'key')
      if (keySlot.length === 0) return undefined
      const k = rng.pick(keySlot)
      if (rng.chance(0.2) && k.node.kind === 'text' && k.node.value.length > 0) {
        const v = copy(k.node.value)
        const at = rng.int(v.length)
        v[at] = (v[at] as number) ^ (1 << rng.int(7))
        k.set({ kind: 'text', value: v })
      } else k.set(text(rng.pick([...SPECIAL_KEYS, ...init.keys])))
      return 'key.rename'
    }
    case 1: { // a key of another type
      const keySlot = all.filter((s) => s.role === 'key')
      if (keySlot.length === 0) return undefined
      rng.pick(keySlot).set(randomNode(rng, init, 'text'))
      return 'key.retype'
    }
    case 2: case 3: { // duplicate a key, or add one
      const maps = all.filter((s) => s.node.kind === 'map')
      if (maps.length === 0) return undefined
      const m = rng.pick(maps).node as MapNode
      const at = rng.int(m.entries.length + 1)
      if (op === 2 && m.entries.length > 0) {
        const [k, v] = rng.pick(m.entries)
        m.entries.splice(at, 0, [cloneTree(k), rng.chance(0.5) ? cloneTree(v) : randomNode(rng, init)])
        return 'map.dupKey'
      }
      m.entries.splice(at, 0, [text(rng.pick([...SPECIAL_KEYS, ...init.keys])), randomNode(rng, init)])
      return 'map.addKey'
    }
    case 4: { // drop or swap entries (unsorted keys)
      const containers = all.filter((s) => (s.node.kind === 'map' && s.node.entries.length > 0) || (s.node.kind === 'array' && s.node.items.length > 0))
      if (containers.length === 0) return undefined
      const c = rng.pick(containers).node
      const list: unknown[] = c.kind === 'map' ? c.entries : (c as Extract<CborNode, { kind: 'array' }>).items
      const i = rng.int(list.length)
      if (rng.chance(0.5) || list.length < 2) { list.splice(i, 1); return `${c.kind}.drop` }
      const j = rng.int(list.length)
      ;[list[i], list[j]] = [list[j], list[i]]
      return `${c.kind}.swap`
    }
    case 5: case 6: // another type in this place
      slot.set(randomNode(rng, init, node.kind))
      return 'retype'
    case 7: { // non-minimal head
      const v = headValue(node)
      if (v === undefined) return undefined
      const w = widerThanMinimal(rng, v)
      if (w === undefined) return undefined
      ;(node as { width?: Width }).width = w
      return 'nonMinimal'
    }
    case 8: // indefinite length
      if (node.kind === 'array' || node.kind === 'map') { node.indefinite = true; return 'indefinite' }
      if (node.kind === 'bytes' || node.kind === 'text') { node.chunks = rng.range(1, 3); return 'indefinite.chunks' }
      return undefined
    case 9: // a tag around it, or another tag number
      if (node.kind === 'tag' && rng.chance(0.5)) { node.tag = rng.pick(TAGS); return 'tag.renumber' }
      slot.set({ kind: 'tag', tag: rng.pick(TAGS), item: node })
      return 'tag.wrap'
    case 10: { // deep nesting
      const depth = rng.pick(NESTING)
      slot.set(wrap(node, depth, rng.chance(0.3)))
      return `nest.${depth}`
    }
    case 11: { // strings longer, shorter, empty, broken UTF-8
      if (node.kind !== 'bytes' && node.kind !== 'text') return undefined
      const v = node.value
      const choice = rng.int(5)
      if (choice === 0) node.value = v.subarray(0, rng.int(v.length + 1))
      else if (choice === 1) node.value = new Uint8Array([...v, ...rng.bytes(rng.geometric(64))])
      else if (choice === 2) node.value = new Uint8Array(0)
      else if (choice === 3) node.value = new Uint8Array([...v, ...v])
      else { const c = copy(v); if (c.length > 0) c[rng.int(c.length)] = rng.pick([0xff, 0xc3, 0x80, 0x00, 0xed]); node.value = c }
      return 'string.resize'
    }
    case 12: { // a declared length that lies
      if (node.kind !== 'bytes' && node.kind !== 'text' && node.kind !== 'array' && node.kind !== 'map') return undefined
      node.lengthDelta = rng.pick([-3, -2, -1, 1, 2, 3, 1000, 2 ** 31])
      if ('chunks' in node) delete node.chunks
      if ('indefinite' in node) delete node.indefinite
      return 'length.lie'
    }
    case 13: // boundary integers
      if (node.kind !== 'int') { slot.set({ kind: 'int', value: rng.pick(INTS) }); return 'int.replace' }
      node.value = rng.chance(0.5) ? rng.pick(INTS) : node.value + BigInt(rng.pick([-1, 1]))
      return 'int.value'
    case 14:
      slot.set({ kind: 'float', value: node.kind === 'int' && rng.chance(0.5) ? Number(node.value) : rng.pick(FLOATS), size: rng.pick([2, 4, 8] as const) })
      return 'float'
    case 15:
      slot.set({ kind: 'simple', value: rng.pick(SIMPLES) })
      return 'simple'
    case 16: // splice in a subtree of some seed
      if (init.donors.length === 0) return undefined
      slot.set(cloneTree(rng.pick(init.donors)))
      return 'donor'
    case 17: { // mutate CBOR carried inside a byte string (records inside sync messages)
      if (node.kind !== 'bytes' || node.value.length < 2) return undefined
      let inner: CborNode
      try { inner = parseTree(node.value) } catch { return undefined }
      let root = inner
      const innerSlots = slots(root, (n) => { root = n })
      const name = structural(rng, innerSlots, init)
      if (name === undefined) return undefined
      node.value = encodeTree(root)
      return `inner.${name}`
    }
    case 18: { // a CID's bytes
      const cids = all.filter((s) => s.node.kind === 'tag' && s.node.tag === 42n && s.node.item.kind === 'bytes')
      if (cids.length === 0) return undefined
      const item = (rng.pick(cids).node as TagNode).item as StringNode
      const v = copy(item.value)
      const at = rng.int(Math.min(v.length, 6))
      v[at] = rng.pick([0x00, 0x01, 0x12, 0x20, 0x55, 0x70, 0x71, 0xff, (v[at] ?? 0) ^ 1])
      item.value = rng.chance(0.2) ? v.subarray(0, rng.int(v.length)) : v
      return 'cid'
    }
    default: { // empty containers and strings
      if (node.kind === 'array') { node.items = []; return 'array.empty' }
      if (node.kind === 'map') { node.entries = []; return 'map.empty' }
      return undefined
    }
  }
}

/** A mutant of `seed` (whose tree is `tree`, when it parsed): structural operations, raw damage, or both. */
export function mutateCbor (rng: Rng, seed: Uint8Array, tree: CborNode | undefined, init: CborMutatorInit): Mutant {
  const ops: string[] = []
  let bytes = seed
  if (tree !== undefined && rng.chance(0.85)) {
    let root = cloneTree(tree)
    // Mostly one operation, so a refusal can be traced to it; stacked ones now and then.
    const rounds = rng.chance(0.6) ? 1 : rng.range(2, 3)
    for (let i = 0; i < rounds; i++) {
      for (let tries = 0; tries < 8; tries++) {
        const name = structural(rng, slots(root, (n) => { root = n }), init)
        if (name !== undefined) { ops.push(name); break }
      }
    }
    bytes = encodeTree(root)
  }
  if (ops.length === 0 || rng.chance(0.15)) {
    const raw = mutateRaw(rng, bytes)
    bytes = raw.bytes
    ops.push(...raw.ops)
  }
  return { bytes, ops }
}
