/**
 * Payment benchmark: what x402 adds to buying a machine. One requester and two providers on
 * 127.0.0.1 (CmeshNodes as test/helpers/mesh.ts makes them, local backend), one paid (its bids in
 * an EIP-3009 token on a local anvil chain) and one unsettled (wei), measured side by side in one
 * run, alternating: requester.create → 'ready' → receipt opened (then the contract is terminated,
 * untimed, so the provider's capacity comes back).
 *
 *   node --import tsx scripts/bench/payment.ts [--rounds 10] [--window 2] [--json file]
 *
 * Per round: (a) total, create() → receipt opened; (b) collecting, create() → the flow leaves
 * 'collecting' (the bid window, the same for both); (c) (a) − (b); for the paid pair also
 * (d) payment, the provider's 'awaiting-payment' progress → the requester's 'paid' event: sign the
 * authorization, 402 round trip, the provider's verify + settle on chain + read-back + record,
 * the requester's own on-chain check, CCBAP and the re-signed CCBA.
 */
import '../../src/node/polyfills.js'
import { writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { TestMesh, waitFor } from '../../test/helpers/mesh.js'
import { startLocalChain } from '../chain/local-chain.js'
import { openReceipt } from '../../src/market/sealed-receipt.js'
import { cidForBytes } from '../../src/market/cbor.js'
import { userDataRef } from '../../src/market/ccrfp.js'
import type { CmeshNode } from '../../src/node/node.js'
import type { RfpRequest } from '../../src/node/services/requester.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const rounds = Number(args.get('rounds') ?? 10)
const windowSecs = Number(args.get('window') ?? 2)
const jsonFile = args.get('json')
const nowSecs = (): number => Math.floor(Date.now() / 1000)
const userData = new TextEncoder().encode('true\n')

function request (): RfpRequest {
  return { cpus: 1, mem: '256M', disk: '1G', network: '1G', role: 'default', userData, cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 18n, durationSecs: 600, bidWindowSecs: windowSecs } }
}

function stats (xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b)
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN
  return `p50 ${q(0.5).toFixed(0)} ms, p95 ${q(0.95).toFixed(0)} ms, max ${(s.at(-1) ?? NaN).toFixed(0)} ms`
}

async function buy (requester: CmeshNode): Promise<{ total: number, collecting: number, payment?: number }> {
  const t0 = performance.now()
  let collected: number | undefined
  let awaiting: number | undefined
  let paid: number | undefined
  const off = requester.events.subscribe((e) => {
    const d = e.data as { state?: string, stage?: string }
    if (e.type !== 'contract') return
    if (collected === undefined && d.state !== undefined && d.state !== 'collecting') collected = performance.now()
    if (d.stage === 'awaiting-payment') awaiting = performance.now()
    if (d.state === 'paid' && paid === undefined) paid = performance.now()
  })
  try {
    const rfp = await requester.services.requester.create(request())
    const id = rfp.cid.toString()
    let state = ''
    await waitFor('ready', async () => {
      state = String((await requester.services.requester.status(id))?.state)
      return ['ready', 'failed', 'no-bids'].includes(state)
    }, 60_000, 5)
    if (state !== 'ready') throw new Error(`round ended ${state}: ${JSON.stringify(await requester.services.requester.status(id))}`)
    const sealed = await requester.services.requester.receipt(id)
    if (sealed === undefined) throw new Error('no receipt')
    await openReceipt({ enc: sealed.enc, ct: sealed.ct }, sealed.receiptKey, cidForBytes(sealed.ccr).bytes)
    const total = performance.now() - t0
    // Ended at once (not timed): the provider's capacity comes back for the next round.
    await requester.services.contractWatch.terminate(id)
    return { total, collecting: (collected ?? t0) - t0, ...(awaiting !== undefined && paid !== undefined ? { payment: paid - awaiting } : {}) }
  } finally {
    off()
  }
}

const mesh = new TestMesh()
const chain = await startLocalChain()
try {
  const payment = { chainId: chain.chainId, rpcUrl: chain.rpcUrl, asset: chain.token.address, assetName: chain.token.name }
  const pairs: Record<'paid' | 'unsettled', { provider: CmeshNode, requester: CmeshNode }> = {
    paid: { provider: await mesh.node({ roles: ['provider'], payment, gossipHeartbeatMs: 1000 }), requester: await mesh.node({ roles: ['requester'], payment, gossipHeartbeatMs: 1000 }) },
    unsettled: { provider: await mesh.node({ roles: ['provider'], gossipHeartbeatMs: 1000 }), requester: await mesh.node({ roles: ['requester'], gossipHeartbeatMs: 1000 }) }
  }
  await chain.mint(pairs.paid.requester.services.payments.address as `0x${string}`, 10n ** 15n)
  await chain.publicClient.request({ method: 'anvil_setBalance' as any, params: [pairs.paid.provider.services.payments.address, `0x${(10n ** 19n).toString(16)}`] as any })
  for (const { provider, requester } of Object.values(pairs)) {
    await mesh.connect(requester, provider)
    await waitFor('card', () => requester.collection.get(provider.identity.did, nowSecs()) !== undefined)
  }
  // One unmeasured round each: the bond at the floor and the bid protocol's first stream.
  for (const pair of Object.values(pairs)) await buy(pair.requester)
  const results: Record<'paid' | 'unsettled', Array<{ total: number, collecting: number, payment?: number }>> = { paid: [], unsettled: [] }
  for (let r = 0; r < rounds; r++) {
    for (const kind of ['paid', 'unsettled'] as const) {
      try {
        results[kind].push(await buy(pairs[kind].requester))
      } catch (err) {
        console.error(`round ${r} ${kind}:`, JSON.stringify((pairs[kind].provider.services.provider as any).ledger.toJSON()))
        throw err
      }
    }
  }
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${rounds} rounds each, ${windowSecs} s bid window`)
  for (const kind of ['paid', 'unsettled'] as const) {
    const rs = results[kind]
    console.log(`${kind.padEnd(9)} total ${stats(rs.map((r) => r.total))}; after the window ${stats(rs.map((r) => r.total - r.collecting))}${kind === 'paid' ? `; payment ${stats(rs.map((r) => r.payment ?? NaN))}` : ''}`)
  }
  if (jsonFile !== undefined) {
    const row = (kind: 'paid' | 'unsettled'): string[] => {
      const rs = results[kind]
      return [kind === 'paid' ? 'paid (x402 on anvil)' : 'unsettled (wei)', String(rs.length), stats(rs.map((r) => r.total)), stats(rs.map((r) => r.total - r.collecting)), kind === 'paid' ? stats(rs.map((r) => r.payment ?? NaN)) : '—']
    }
    await writeFile(jsonFile, JSON.stringify({
      bench: 'payment',
      command: `node --import tsx scripts/bench/payment.ts ${process.argv.slice(2).join(' ')}`.trim(),
      machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`,
      notes: [`${windowSecs} s bid window; the unsettled pair is the peer measured beside the paid one, alternating rounds`],
      tables: [{ title: 'Payment: what x402 adds to buying a machine', columns: ['bids', 'rounds', 'total', 'after the bid window', 'payment step'], rows: [row('paid'), row('unsettled')] }]
    }, null, 2))
  }
} finally {
  await mesh.cleanup()
  await chain.stop()
}
