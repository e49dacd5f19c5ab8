/**
 * The fuzz loop: for each target, mutants of its seeds go to its decoder, one at a time, and each
 * outcome is sorted. A decoder may accept (the seed itself, an equivalent of it, or for unsigned
 * formats a different valid value) or refuse with one of its typed errors; anything else is a
 * finding: an untyped error (crash), a slow input (> slowMs of CPU, confirmed by a second run) or,
 * for signed formats, an accepted non-original (a forgery, unless the mutant was re-signed).
 */
import { toHex } from '../../src/market/bytes.js'
import { Rng } from './rng.js'
import type { Mutant } from './mutate-cbor.js'

export type Acceptance = 'original' | 'equivalent' | 'other'

export interface FuzzTarget {
  name: string
  seeds: Uint8Array[]
  mutate: (rng: Rng, seed: number) => Mutant | Promise<Mutant>
  decode: (bytes: Uint8Array) => unknown
  /** The stable code of a typed refusal, or undefined when `err` is none of this decoder's typed errors. */
  codeOf: (err: unknown) => string | undefined
  /** A typed refusal that wraps an unexpected internal exception: counted, and listed for a look. */
  isCatchAll?: (err: unknown) => boolean
  /** Accepted inputs: the seed, an equivalent encoding of it, or another value. */
  classify: (value: unknown, bytes: Uint8Array) => Acceptance
  /** Signed formats: accepting `other` is a forgery. Unsigned ones may well decode other valid values. */
  signed: boolean
  /** Slow decoders (quote verification) run the smaller count. */
  expensive?: boolean
  note?: string
}

export type FindingKind = 'crash' | 'slow' | 'forgery' | 'catch-all' | 'seed-refused'

export interface Finding {
  kind: FindingKind
  target: string
  input: number
  ops: string[]
  bytes: Uint8Array
  detail: string
}

export interface TargetReport {
  name: string
  note?: string
  inputs: number
  seconds: number
  acceptedOriginal: number
  acceptedEquivalent: number
  acceptedOther: number
  acceptedResigned: number
  refusals: Record<string, number>
  crashes: number
  slow: number
  forgeries: number
  catchAll: number
  seedRefused: number
  maxCpuMs: number
  findings: Finding[]
}

export interface RunOptions {
  count: number
  /** Per target. */
  seconds: number
  seed: string
  slowMs?: number
  /** Findings kept per kind and target (all are counted). */
  keep?: number
  onProgress?: (report: TargetReport) => void
}

function describe (err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message.slice(0, 300)}${err.stack !== undefined ? `\n      at ${err.stack.split('\n').slice(1, 4).map((l) => l.trim()).join('\n      ')}` : ''}`
  return `non-Error thrown: ${typeof err}`
}

function cpuMs (since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since)
  return (d.user + d.system) / 1000
}

type Outcome = { ok: true, value: unknown, cpu: number } | { ok: false, err: unknown, cpu: number }

async function attempt (target: FuzzTarget, bytes: Uint8Array): Promise<Outcome> {
  const started = process.cpuUsage()
  try {
    const value = await target.decode(bytes)
    return { ok: true, value, cpu: cpuMs(started) }
  } catch (err) {
    return { ok: false, err, cpu: cpuMs(started) }
  }
}

export async function runTarget (target: FuzzTarget, options: RunOptions): Promise<TargetReport> {
  const slowMs = options.slowMs ?? 100
  const keep = options.keep ?? 5
  const rng = new Rng(`${options.seed}/${target.name}`)
  const report: TargetReport = {
    name: target.name,
    ...(target.note !== undefined ? { note: target.note } : {}),
    inputs: 0,
    seconds: 0,
    acceptedOriginal: 0,
    acceptedEquivalent: 0,
    acceptedOther: 0,
    acceptedResigned: 0,
    refusals: {},
    crashes: 0,
    slow: 0,
    forgeries: 0,
    catchAll: 0,
    seedRefused: 0,
    maxCpuMs: 0,
    findings: []
  }
  const kept: Record<FindingKind, number> = { crash: 0, slow: 0, forgery: 0, 'catch-all': 0, 'seed-refused': 0 }
  const find = (kind: FindingKind, input: number, mutant: Mutant, detail: string): void => {
    if (kept[kind]++ < keep) report.findings.push({ kind, target: target.name, input, ops: mutant.ops, bytes: mutant.bytes, detail })
  }
  const seedsBefore = target.seeds.map(toHex).join()
  const started = performance.now()
  const deadline = started + options.seconds * 1000
  // The seeds themselves first: each must be accepted as itself, or the target is mis-built.
  // (Fresh copies: a mutator that wrote into a seed would corrupt the rest of the run.)
  const queue: Array<() => Promise<Mutant> | Mutant> = target.seeds.map((bytes) => () => ({ bytes: Uint8Array.from(bytes), ops: ['seed'] }))
  for (let i = 0; i < options.count; i++) {
    const mutant = queue.length > 0 ? await (queue.shift() as () => Promise<Mutant> | Mutant)() : await target.mutate(rng, rng.int(target.seeds.length))
    if (i >= target.seeds.length && performance.now() > deadline) break
    report.inputs++
    let outcome = await attempt(target, mutant.bytes)
    if (outcome.cpu > slowMs) {
      // Confirm: one slow run can be a GC pause or a busy machine.
      const again = await attempt(target, mutant.bytes)
      if (again.cpu > slowMs) {
        report.slow++
        find('slow', i, mutant, `${outcome.cpu.toFixed(0)} ms then ${again.cpu.toFixed(0)} ms of CPU`)
      }
      outcome = again.cpu < outcome.cpu ? again : outcome
    }
    report.maxCpuMs = Math.max(report.maxCpuMs, outcome.cpu)
    if (mutant.ops[0] === 'seed') {
      if (!outcome.ok || target.classify(outcome.value, mutant.bytes) !== 'original') {
        report.seedRefused++
        find('seed-refused', i, mutant, outcome.ok ? 'seed decoded as something else' : describe(outcome.err))
      } else report.acceptedOriginal++
      continue
    }
    if (outcome.ok) {
      const kind = target.classify(outcome.value, mutant.bytes)
      if (kind === 'original') report.acceptedOriginal++
      else if (kind === 'equivalent') report.acceptedEquivalent++
      else if (mutant.resigned === true) report.acceptedResigned++
      else if (target.signed) {
        report.forgeries++
        find('forgery', i, mutant, 'a signed object that is none of the seeds was accepted')
      } else report.acceptedOther++
      continue
    }
    const code = target.codeOf(outcome.err)
    if (code === undefined) {
      report.crashes++
      find('crash', i, mutant, describe(outcome.err))
      continue
    }
    report.refusals[code] = (report.refusals[code] ?? 0) + 1
    if (target.isCatchAll?.(outcome.err) === true) {
      report.catchAll++
      find('catch-all', i, mutant, `${code}: ${describe(outcome.err)}`)
    }
  }
  report.seconds = (performance.now() - started) / 1000
  if (target.seeds.map(toHex).join() !== seedsBefore) throw new Error(`fuzzer bug: a ${target.name} mutator wrote into a seed`)
  options.onProgress?.(report)
  return report
}

export interface FuzzSummary {
  reports: TargetReport[]
  failed: boolean
}

export async function runFuzz (targets: FuzzTarget[], options: RunOptions & { expensiveCount: number }): Promise<FuzzSummary> {
  const reports: TargetReport[] = []
  for (const target of targets) {
    reports.push(await runTarget(target, { ...options, count: target.expensive === true ? options.expensiveCount : options.count }))
  }
  return { reports, failed: reports.some((r) => r.crashes + r.slow + r.forgeries + r.seedRefused > 0) }
}

const pad = (s: string | number, n: number): string => String(s).padStart(n)

/** The summary table and every kept finding, as text. */
export function formatSummary (summary: FuzzSummary, command: string): string {
  const lines: string[] = []
  lines.push(`command: ${command}`)
  lines.push('')
  lines.push(`${'target'.padEnd(22)} ${pad('inputs', 8)} ${pad('inputs/s', 9)} ${pad('orig', 6)} ${pad('equiv', 6)} ${pad('other', 6)} ${pad('resign', 6)} ${pad('refused', 8)} ${pad('crash', 6)} ${pad('slow', 5)} ${pad('forged', 6)} ${pad('c-all', 6)} ${pad('maxCPU', 8)}`)
  const total = { inputs: 0, seconds: 0, refused: 0, crashes: 0, slow: 0, forgeries: 0, catchAll: 0, seedRefused: 0 }
  for (const r of summary.reports) {
    const refused = Object.values(r.refusals).reduce((a, b) => a + b, 0)
    total.inputs += r.inputs; total.seconds += r.seconds; total.refused += refused
    total.crashes += r.crashes; total.slow += r.slow; total.forgeries += r.forgeries; total.catchAll += r.catchAll; total.seedRefused += r.seedRefused
    lines.push(`${r.name.padEnd(22)} ${pad(r.inputs, 8)} ${pad(Math.round(r.inputs / Math.max(r.seconds, 1e-6)), 9)} ${pad(r.acceptedOriginal, 6)} ${pad(r.acceptedEquivalent, 6)} ${pad(r.acceptedOther, 6)} ${pad(r.acceptedResigned, 6)} ${pad(refused, 8)} ${pad(r.crashes, 6)} ${pad(r.slow, 5)} ${pad(r.forgeries, 6)} ${pad(r.catchAll, 6)} ${pad(`${r.maxCpuMs.toFixed(1)}ms`, 8)}`)
  }
  lines.push(`${'TOTAL'.padEnd(22)} ${pad(total.inputs, 8)} ${pad(Math.round(total.inputs / Math.max(total.seconds, 1e-6)), 9)} ${''.padStart(27)} ${pad(total.refused, 9)} ${pad(total.crashes, 6)} ${pad(total.slow, 5)} ${pad(total.forgeries, 6)} ${pad(total.catchAll, 6)}`)
  lines.push('')
  lines.push('orig/equiv: accepted as a seed (equiv: other bytes, same meaning); other: a different valid value of an unsigned format;')
  lines.push('resign: accepted after the fuzzer re-signed it; forged: a signed format accepted a non-original; c-all: typed catch-all refusals.')
  lines.push('')
  lines.push('refusals by code:')
  for (const r of summary.reports) {
    const codes = Object.entries(r.refusals).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ')
    lines.push(`  ${r.name}: ${codes.length > 0 ? codes : '(none)'}`)
    if (r.note !== undefined) lines.push(`    note: ${r.note}`)
  }
  const findings = summary.reports.flatMap((r) => r.findings)
  if (findings.length > 0) {
    lines.push('')
    lines.push('findings (first few of each kind per target):')
    for (const f of findings) {
      const hex = toHex(f.bytes)
      lines.push(`  [${f.kind}] ${f.target} input #${f.input} (${f.bytes.length} bytes; ops ${f.ops.join(' ')})`)
      lines.push(`    ${f.detail.split('\n').join('\n    ')}`)
      lines.push(`    hex: ${hex.length > 2048 ? `${hex.slice(0, 2048)}… (${f.bytes.length} bytes)` : hex}`)
    }
  }
  lines.push('')
  lines.push(`result: ${total.crashes} untyped errors, ${total.slow} slow inputs, ${total.forgeries} accepted non-originals${total.seedRefused > 0 ? `, ${total.seedRefused} seeds refused` : ''} — ${summary.failed ? 'FAIL' : 'ok'}`)
  return lines.join('\n')
}
