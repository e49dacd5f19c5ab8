/**
 * Structure-aware fuzzing of every decoder that reads peer bytes (records, stream messages, TDX
 * quotes, collateral). Bounded by count and time; exits 1 on any untyped error, slow input or
 * accepted non-original of a signed format.
 *
 *   node --import tsx scripts/fuzz/fuzz.ts [--count N] [--seconds S] [--verify-count M]
 *                                          [--target name]… [--seed text] [--slow-ms T] [--list]
 *
 * --count        inputs per target (default 10000)
 * --seconds      time cap per target (default 60); a target stops at whichever comes first
 * --verify-count inputs for the expensive targets, quote and collateral verification (default min(count, 2000))
 * --target       a target name or prefix (`card`, `sync`, `attest.`, `quote.parse`); repeatable
 * --seed         the PRNG seed (default `cmesh-fuzz`); a run is replayed exactly with the same seed
 * --save         a directory to write each kept finding's full input to (<target>.<kind>.<input>.bin)
 */
import '../../src/node/polyfills.js'
import { parseArgs } from 'node:util'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildTargets } from './targets.js'
import { formatSummary, runFuzz } from './harness.js'

async function main (): Promise<number> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '10000' },
      seconds: { type: 'string', default: '60' },
      'verify-count': { type: 'string' },
      target: { type: 'string', multiple: true, default: [] },
      seed: { type: 'string', default: 'cmesh-fuzz' },
      'slow-ms': { type: 'string', default: '100' },
      save: { type: 'string' },
      list: { type: 'boolean', default: false }
    },
    strict: true
  })
  const count = Number(values.count)
  const seconds = Number(values.seconds)
  const expensiveCount = values['verify-count'] !== undefined ? Number(values['verify-count']) : Math.min(count, 2000)
  const slowMs = Number(values['slow-ms'])
  if (![count, seconds, expensiveCount, slowMs].every((n) => Number.isFinite(n) && n >= 0)) throw new Error('--count, --seconds, --verify-count and --slow-ms take non-negative numbers')
  const targets = await buildTargets(values.target)
  if (values.list) {
    for (const t of targets) console.log(`${t.name.padEnd(22)} ${t.seeds.length} seeds${t.expensive === true ? ' (expensive)' : ''}${t.note !== undefined ? `  ${t.note}` : ''}`)
    return 0
  }
  const command = ['node --import tsx scripts/fuzz/fuzz.ts', ...process.argv.slice(2)].join(' ')
  console.error(`fuzzing ${targets.length} targets: ${count} inputs each (${expensiveCount} for verification), at most ${seconds} s each, seed ${values.seed}`)
  const summary = await runFuzz(targets, {
    count,
    seconds,
    expensiveCount,
    seed: values.seed,
    slowMs,
    onProgress: (r) => console.error(`  ${r.name}: ${r.inputs} inputs in ${r.seconds.toFixed(1)} s, ${r.crashes} crashes, ${r.slow} slow, ${r.forgeries} forged`)
  })
  console.log(formatSummary(summary, command))
  const findings = summary.reports.flatMap((r) => r.findings)
  if (values.save !== undefined && findings.length > 0) {
    mkdirSync(values.save, { recursive: true })
    for (const f of findings) writeFileSync(join(values.save, `${f.target}.${f.kind}.${f.input}.bin`), f.bytes)
    console.log(`${findings.length} finding inputs written to ${values.save}`)
  }
  return summary.failed ? 1 : 0
}

main().then((code) => { process.exitCode = code }, (err) => {
  console.error(err)
  process.exitCode = 2
})
