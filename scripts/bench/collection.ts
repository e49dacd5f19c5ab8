/**
 * Collection benchmark: ingest throughput (decode + verify + apply, the path sync and gossip take),
 * merge throughput of already-verified replicas, summary/diff cost, and memory, for 10k and 100k cards.
 *
 *   node scripts/bench/collection.js [sizes…] [--json file]   (default: 10000 100000; wraps tsx and --expose-gc)
 */
import { writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  identityFromSeed, signRecord, decodeRecord, ProviderCardType, ProviderCollection, COLLECTION_RECORD_TYPES,
  differingBuckets, rateTableDigest, utf8, type Rate, type SignedProviderCard
} from '../../src/market/index.js'

const T0 = 1_800_000_000
const argv = process.argv.slice(2)
const jsonAt = argv.indexOf('--json')
const jsonFile = jsonAt >= 0 ? argv.splice(jsonAt, 2)[1] : undefined
const sizes = argv.map(Number).filter((n) => n > 0)
if (sizes.length === 0) sizes.push(10_000, 100_000)

const rates: Rate[] = [{ backend: 'local', cpuHourWei: 1000n, memoryGiBHourWei: 100n, diskGiBHourWei: 10n }]
function card (i: number, committedAt: number): SignedProviderCard {
  const id = identityFromSeed(sha256(utf8(`bench ${i}`)))
  return signRecord(ProviderCardType, {
    providerId: id.did,
    schemesSupported: ['vm.ssh'],
    attestationLevel: 'Software',
    attestationDigest: sha256(utf8(id.did)),
    capacityPerSecond: 10,
    feePerPartialWei: BigInt(1_000_000 + i),
    committedAtUnixSecs: committedAt,
    expiresAtUnixSecs: committedAt + 86_400,
    backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: 4, maxMemoryMiB: 8192, maxDiskGiB: 50, tdx: false }],
    rates,
    rateTableDigest: rateTableDigest(rates),
    listenAddrs: ['/ip4/127.0.0.1/tcp/4001']
  }, id)
}

const mb = (n: number) => (n / 1024 / 1024).toFixed(1)
const gc = (globalThis as any).gc as (() => void) | undefined

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${mb(totalmem())} MiB, node ${process.version}`
const command = `node scripts/bench/collection.js ${sizes.join(' ')}`
const columns = ['cards', 'sign (cards/s)', 'ingest bytes→verified→applied (cards/s)', 'merge verified replicas (cards/s)', 'summary+diff (ms)', 'heap per card (bytes)', 'RSS after (MiB)']
const rows: string[][] = []
console.log(`machine: ${machine}`)
console.log(`command: ${command}`)
console.log(`| ${columns.join(' | ')} |`)
console.log('|---|---|---|---|---|---|---|')

for (const n of sizes) {
  let t = performance.now()
  const cards = Array.from({ length: n }, (_, i) => card(i, T0))
  const signRate = n / ((performance.now() - t) / 1000)
  const bytes = cards.map((c) => c.bytes)
  const newer = cards.slice(0, Math.floor(n / 10)).map((_c, i) => card(i, T0 + 1))
  cards.length = 0

  gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  t = performance.now()
  const a = new ProviderCollection()
  for (const b of bytes) a.apply(decodeRecord(b, COLLECTION_RECORD_TYPES), T0)
  const ingestRate = n / ((performance.now() - t) / 1000)
  gc?.()
  const heapPerCard = (process.memoryUsage().heapUsed - heapBefore) / n

  // Replica b holds 10% newer cards; merging it into a (and a into a copy of b) is the LWW join.
  const b = new ProviderCollection()
  for (const c of newer) b.apply(c, T0)
  t = performance.now()
  const merged = new ProviderCollection()
  merged.merge(a, T0)
  merged.merge(b, T0)
  const mergeRate = (a.size + b.size) / ((performance.now() - t) / 1000)

  t = performance.now()
  const diff = differingBuckets(a.summary(), merged.summary())
  a.reconcile(merged.entries(diff), diff)
  const summaryMs = performance.now() - t

  const row = [String(n), signRate.toFixed(0), ingestRate.toFixed(0), mergeRate.toFixed(0), summaryMs.toFixed(1), heapPerCard.toFixed(0), mb(process.memoryUsage().rss)]
  rows.push(row)
  console.log(`| ${row.join(' | ')} |`)
}
if (jsonFile !== undefined) {
  writeFileSync(jsonFile, JSON.stringify({ bench: 'collection', command, machine, tables: [{ title: 'Provider collection', columns, rows }] }, null, 2))
}
