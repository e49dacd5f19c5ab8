/**
 * Resource sizes as the compute-contract lexicon writes them (`mem: "512M"`, `disk: "10G"`,
 * `network: "500G"`): a positive integer and one binary unit, K/M/G/T = 2^10/2^20/2^30/2^40 bytes.
 * Parsing is strict so that one size has one spelling a signature can cover: no spaces, no
 * decimals, no leading zeros, no zero, no lower-case or SI (`GB`, `Gi`) units.
 */
import { z } from 'zod'

export const SIZE_UNITS = ['K', 'M', 'G', 'T'] as const
export type SizeUnit = typeof SIZE_UNITS[number]

const UNIT_BYTES: Record<SizeUnit, bigint> = { K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n }
const MIB = 1n << 20n
const GIB = 1n << 30n

/** 8 PiB − 1: sizes stay exact as JS numbers of bytes, and far above any machine. */
export const MAX_SIZE_BYTES = BigInt(Number.MAX_SAFE_INTEGER)
/** Longest accepted spelling: 15 digits and a unit. */
export const MAX_SIZE_CHARS = 16

const SIZE_PATTERN = /^([1-9][0-9]{0,14})([KMGT])$/

export interface Size {
  value: number
  unit: SizeUnit
  bytes: bigint
}

/** The parsed size, or undefined when `text` is not a strict lexicon size. */
export function tryParseSize (text: unknown): Size | undefined {
  if (typeof text !== 'string' || text.length > MAX_SIZE_CHARS) return undefined
  const m = SIZE_PATTERN.exec(text)
  if (m === null) return undefined
  const unit = m[2] as SizeUnit
  const bytes = BigInt(m[1] as string) * UNIT_BYTES[unit]
  if (bytes > MAX_SIZE_BYTES) return undefined
  return { value: Number(m[1]), unit, bytes }
}

export function isSize (text: unknown): text is string {
  return tryParseSize(text) !== undefined
}

/** Throws a TypeError on anything but a strict size; schemas use `sizeString` instead. */
export function parseSize (text: string): Size {
  const size = tryParseSize(text)
  if (size === undefined) throw new TypeError(`not a size (integer and K/M/G/T, e.g. "4G"): ${String(text).slice(0, 20)}`)
  return size
}

function ceilDiv (a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b
}

/** Whole MiB needed to hold the size (rounded up: `512K` needs 1 MiB). */
export function sizeToMiB (text: string): number {
  return Number(ceilDiv(parseSize(text).bytes, MIB))
}

/** Whole GiB needed to hold the size (rounded up: `500M` needs 1 GiB). */
export function sizeToGiB (text: string): number {
  return Number(ceilDiv(parseSize(text).bytes, GIB))
}

/** The canonical spelling of a byte count: the largest unit that divides it exactly. */
export function formatBytes (bytes: bigint | number): string {
  const n = BigInt(bytes)
  if (n <= 0n || n > MAX_SIZE_BYTES || n % UNIT_BYTES.K !== 0n) {
    throw new TypeError('a size is a positive whole number of KiB, at most 2^53 − 1 bytes')
  }
  for (const unit of ['T', 'G', 'M', 'K'] as const) {
    if (n % UNIT_BYTES[unit] === 0n) return `${n / UNIT_BYTES[unit]}${unit}`
  }
  /* c8 ignore next */
  throw new TypeError('unreachable')
}

export function formatMiB (mib: number): string {
  return formatBytes(BigInt(mib) * MIB)
}

export function formatGiB (gib: number): string {
  return formatBytes(BigInt(gib) * GIB)
}

/** zod: a strict lexicon size string (kept as the string; callers convert with sizeToMiB/GiB). */
export const sizeString = z.string().refine((s) => isSize(s), { message: 'expected a size: integer and K/M/G/T, e.g. "4G"' })
