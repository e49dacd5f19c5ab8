/**
 * Differential oracle at scale: the project's TDX verifier (full path and fast path) against
 * @phala/dcap-qvl alone, on the real Intel fixtures and simulated quotes and `--count` seeded
 * mutations of them. Prints the agreement table and the stricter refusals with their reasons;
 * exits 1 on any unexplained disagreement or any difference between the fast and the full path.
 *
 *   node --import tsx scripts/bench/oracle.ts [--count 10000] [--seed 1] [--json <file>]
 */
import { writeFileSync } from 'node:fs'
import { formatReport, realSubject, runOracle, simulatedSubjects, type Subject } from '../../test/attestation/oracle-harness.js'
import { needsFixtures } from '../../test/helpers/tdx.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const count = Number(args.get('count') ?? 10_000)
const seed = Number(args.get('seed') ?? 1)

const subjects: Subject[] = []
if ('skip' in needsFixtures) console.log(`note: ${needsFixtures.skip}; simulated quotes only`)
else subjects.push(realSubject('v4-uptodate'), realSubject('v5-out-of-tcb'))
subjects.push(...await simulatedSubjects())

const started = performance.now()
const report = await runOracle(subjects, {
  count,
  seed,
  onProgress: (done) => { if (done % 1000 === 0) process.stderr.write(`${done}/${count} in ${((performance.now() - started) / 1000).toFixed(0)} s\n`) }
})
console.log(`command: node --import tsx scripts/bench/oracle.ts ${process.argv.slice(2).join(' ')}`.trim())
console.log(`${count} mutations (seed ${seed}) over ${subjects.length} subjects in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
console.log(formatReport(report))
const json = args.get('json')
if (json !== undefined) {
  writeFileSync(json, JSON.stringify([...report.table].map(([key, row]) => ({ bench: 'oracle', key, ...row })), null, 2))
}
process.exit(report.failures.length > 0 ? 1 : 0)
