/**
 * The attest protocol between real libp2p nodes on loopback: honest bonds at each level, and one
 * named test per attack (replay, cuckoo relay, reflection, downgrade, oversize evidence,
 * slow-loris). Each attack must leave no bond on the victim's connection.
 */
import '../../src/node/polyfills.js'
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import type { Connection, Stream } from '@libp2p/interface'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/node/libp2p.js'
import type { RateLimit } from '../../src/protocols/rate-limit.js'
import { AttestProtocol, AttestError, ATTEST_MAX_MESSAGE_BYTES, type AttestInit } from '../../src/protocols/attest.js'
import { SimulatedQuoteProvider } from '../../src/attestation/quote-provider.js'
import { attestContext, attestReportData } from '../../src/attestation/binding.js'
import { measurementManifestDigest } from '../../src/attestation/card-evidence.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { identityFromSeed, encodeCanonical, decodeCanonical, type AttestationLevel, type Identity } from '../../src/market/index.js'
import { protocolId } from '../../src/protocols/names.js'
import { testNetwork } from '../helpers/mesh.js'

const SEED = 'cmesh attest test TEST-ONLY PKI'

interface Peer { node: MeshLibp2p, identity: Identity, attest?: AttestProtocol }

describe('attest protocol', () => {
  const network = testNetwork()
  const nodes: MeshLibp2p[] = []
  let tdx: SimulatedQuoteProvider
  /** The measurement manifest of the simulated TD image every honest peer here runs. */
  let manifest: Uint8Array

  before(async () => {
    tdx = await SimulatedQuoteProvider.create({ seed: SEED })
    manifest = measurementManifestDigest(parseTdxQuote(await tdx.quote(new Uint8Array(64))).body)
  })
  after(async () => { await Promise.all(nodes.map((n) => n.stop())) })

  async function peer (options: { require?: AttestationLevel, tdx?: boolean, timeoutMs?: number, protocol?: boolean, globalRate?: RateLimit } = {}): Promise<Peer> {
    const key = await generateKeyPair('Ed25519')
    const node = await createMeshLibp2p({ privateKey: key, network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false })
    nodes.push(node)
    const identity = identityFromSeed(key.raw.subarray(0, 32))
    if (options.protocol === false) return { node, identity }
    const init: AttestInit = {
      network,
      identity,
      anchor: tdx.trustAnchor,
      require: options.require ?? 'Software',
      manifest,
      timeoutMs: options.timeoutMs ?? 5000,
      ...(options.globalRate !== undefined ? { globalRate: options.globalRate } : {}),
      ...(options.tdx === true ? { quoteProvider: tdx } : {})
    }
    const attest = new AttestProtocol(node, init)
    await attest.start()
    return { node, identity, attest }
  }

  const connect = async (a: Peer, b: Peer): Promise<Connection> => await a.node.dial(b.node.getMultiaddrs())
  const code = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p
      return 'BONDED'
    } catch (err) {
      assert.ok(err instanceof AttestError, String(err))
      return err.code
    }
  }

  it('bonds two TDX nodes bidirectionally (simulated quotes under the test root)', async () => {
    const [a, b] = [await peer({ tdx: true, require: 'TdxRemote' }), await peer({ tdx: true, require: 'TdxRemote' })]
    const conn = await connect(a, b)
    const bond = await a.attest!.attest(conn)
    assert.equal(bond.level, 'TdxRaTlsBidirectional')
    assert.equal(bond.bidirectional, true)
    assert.equal(bond.simulated, true)
    assert.equal(bond.tcb?.tcbStatus, 'UpToDate')
    assert.ok(a.attest!.isBonded(conn, 'TdxRaTlsBidirectional'))
    // The responder holds the same bond, with the same transcript.
    const back = b.node.getConnections(a.node.peerId)[0] as Connection
    const theirs = b.attest!.bondFor(back)
    assert.equal(theirs?.level, 'TdxRaTlsBidirectional')
    assert.deepEqual(theirs?.transcript, bond.transcript)
  })

  it('a Software requester bonds with a TDX provider: each side gets what it required', async () => {
    const provider = await peer({ tdx: true, require: 'Software' })
    const laptop = await peer({ require: 'TdxRemote' })
    const conn = await connect(laptop, provider)
    const bond = await laptop.attest!.attest(conn)
    assert.equal(bond.level, 'TdxRemote', 'the provider proved TDX; not bidirectional, the laptop has no quote')
    const back = provider.node.getConnections(laptop.node.peerId)[0] as Connection
    assert.equal(provider.attest!.bondFor(back)?.level, 'Software')
  })

  it('downgrade: a peer offering less than required is refused and no bond stands', async () => {
    const victim = await peer({ require: 'TdxRemote' })
    const softwareOnly = await peer({ require: 'Software' })
    const conn = await connect(victim, softwareOnly)
    assert.equal(await code(victim.attest!.attest(conn)), 'ATTEST_LEVEL_TOO_LOW')
    assert.equal(victim.attest!.isBonded(conn, 'Software'), false)
  })

  /** A hostile responder that speaks the protocol by hand; `evidence` decides what it sends. */
  async function hostile (evidence: (ctx: { victimHello: any, myHello: any, ctxHash: Uint8Array, victim: Uint8Array, me: Uint8Array, victimEvidence?: any }) => Promise<unknown>, options: { stall?: boolean, manifest?: Uint8Array } = {}): Promise<Peer> {
    const m = await peer({ protocol: false })
    await m.node.handle(protocolId(network, 'attest'), async (stream: Stream, connection: Connection) => {
      const lp = lpStream(stream, { maxDataLength: ATTEST_MAX_MESSAGE_BYTES * 2 })
      try {
        const victimHelloBytes = (await lp.read()).subarray()
        if (options.stall === true) return // slow-loris: never answer
        const myHello = { v: 1, nonce: randomBytes(32), offer: 'TdxRaTlsBidirectional', require: 'Software', manifest: options.manifest ?? manifest }
        const myHelloBytes = encodeCanonical(myHello)
        await lp.write(myHelloBytes)
        const ctxHash = attestContext(network, victimHelloBytes, myHelloBytes)
        const victimEvidence = decodeCanonical((await lp.read()).subarray())
        const out = await evidence({ victimHello: decodeCanonical(victimHelloBytes), myHello, ctxHash, victim: connection.remotePeer.toMultihash().bytes, me: m.node.peerId.toMultihash().bytes, victimEvidence })
        await lp.write(out instanceof Uint8Array ? out : encodeCanonical(out))
        await lp.read()
        await lp.write(encodeCanonical({ transcript: new Uint8Array(32), ok: true }))
        await stream.close()
      } catch {
        stream.abort(new Error('hostile peer done'))
      }
    })
    return m
  }

  const tdxEvidence = async (reportData: Uint8Array) => ({ tdx: { quote: await tdx.quote(reportData), collateral: JSON.stringify(await tdx.collateral()) } })

  it('replay: an old quote, genuinely bound to an earlier session, is refused', async () => {
    const victim = await peer({ require: 'TdxRemote' })
    const m = await hostile(async ({ myHello, victim: v, me }) =>
      // Bound exactly as a previous session would have been: right ids, but old nonces and context.
      await tdxEvidence(attestReportData(me, v, randomBytes(32), myHello.nonce, randomBytes(32))))
    const conn = await connect(victim, m)
    assert.equal(await code(victim.attest!.attest(conn)), 'ATTEST_EVIDENCE_INVALID')
    assert.equal(victim.attest!.bondFor(conn), undefined)
  })

  it('cuckoo: a quote an honest TDX host made for another verifier, relayed, is refused', async () => {
    const victim = await peer({ require: 'TdxRemote' })
    const honestHost = (await generateKeyPair('Ed25519')).publicKey.toMultihash().bytes
    const m = await hostile(async ({ victimHello, myHello, ctxHash, me }) =>
      // The relay even feeds the victim's nonce and context to the honest host: only the ids differ.
      await tdxEvidence(attestReportData(honestHost, me, victimHello.nonce, myHello.nonce, ctxHash)))
    const conn = await connect(victim, m)
    assert.equal(await code(victim.attest!.attest(conn)), 'ATTEST_EVIDENCE_INVALID')
    assert.equal(victim.attest!.bondFor(conn), undefined)
  })

  it('reflection: the victim\'s own quote sent back to it is refused', async () => {
    // The victim proves TDX too (the hostile hello requires Software, so make it require TDX here).
    const victim = await peer({ tdx: true, require: 'TdxRemote' })
    const m = await peer({ protocol: false })
    await m.node.handle(protocolId(network, 'attest'), async (stream: Stream) => {
      const lp = lpStream(stream, { maxDataLength: ATTEST_MAX_MESSAGE_BYTES })
      try {
        await lp.read()
        await lp.write(encodeCanonical({ v: 1, nonce: randomBytes(32), offer: 'TdxRaTlsBidirectional', require: 'TdxRemote', manifest: new Uint8Array(32) }))
        const victimEvidence = (await lp.read()).subarray()
        await lp.write(victimEvidence) // reflect it verbatim
        await lp.read()
        await lp.write(encodeCanonical({ transcript: new Uint8Array(32), ok: true }))
        await stream.close()
      } catch {
        stream.abort(new Error('done'))
      }
    })
    const conn = await connect(victim, m)
    assert.equal(await code(victim.attest!.attest(conn)), 'ATTEST_EVIDENCE_INVALID')
    assert.equal(victim.attest!.bondFor(conn), undefined)
  })

  it('oversize evidence is refused without being parsed', async () => {
    const victim = await peer({ require: 'TdxRemote' })
    const m = await hostile(async () => new Uint8Array(ATTEST_MAX_MESSAGE_BYTES + 1024))
    const conn = await connect(victim, m)
    assert.equal(await code(victim.attest!.attest(conn)), 'ATTEST_OVERSIZE')
    assert.equal(victim.attest!.bondFor(conn), undefined)
  })

  it('slow-loris: a peer that stops answering times the exchange out', async () => {
    const victim = await peer({ require: 'TdxRemote', timeoutMs: 500 })
    const m = await hostile(async () => ({}), { stall: true })
    const conn = await connect(victim, m)
    assert.equal(await code(victim.attest!.attest(conn)), 'ATTEST_TIMEOUT')
    assert.equal(victim.attest!.bondFor(conn), undefined)
  })

  it('a genuine, correctly bound quote of another image than the one declared is refused', async () => {
    const victim = await peer({ require: 'TdxRemote' })
    const m = await hostile(async ({ victimHello, myHello, ctxHash, victim: v, me }) =>
      await tdxEvidence(attestReportData(me, v, victimHello.nonce, myHello.nonce, ctxHash)), { manifest: new Uint8Array(32).fill(7) })
    const conn = await connect(victim, m)
    assert.equal(await code(victim.attest!.attest(conn)), 'ATTEST_EVIDENCE_INVALID')
    assert.equal(victim.attest!.bondFor(conn), undefined)
  })

  it('a transcript that differs from ours breaks the bond even when every check passed', async () => {
    const victim = await peer({ require: 'Software' })
    const m = await hostile(async ({ victimHello, myHello, ctxHash, victim: v, me }) => {
      void victimHello
      return await tdxEvidence(attestReportData(me, v, victimHello.nonce, myHello.nonce, ctxHash))
    })
    const conn = await connect(victim, m)
    // The hostile finish carries a zero transcript hash.
    assert.equal(await code(victim.attest!.attest(conn)), 'ATTEST_TRANSCRIPT_MISMATCH')
    assert.equal(victim.attest!.bondFor(conn), undefined)
  })

  it('rate-limits attest sessions per peer', async () => {
    const [a, b] = [await peer(), await peer()]
    const conn = await connect(a, b)
    const results = []
    for (let i = 0; i < 6; i++) results.push(await code(a.attest!.attest(conn)))
    assert.deepEqual(results.slice(0, 4), ['BONDED', 'BONDED', 'BONDED', 'BONDED'])
    assert.ok(results.slice(4).every((r) => r !== 'BONDED'), results.join(','))
  })

  it('limits quote work across all peers too, not only per peer', async () => {
    // Two sessions in all, then none: each peer is well inside its own limit.
    const victim = await peer({ tdx: true, globalRate: { ratePerSec: 0, burst: 2, rejectAfter: Number.MAX_SAFE_INTEGER } })
    const askers = await Promise.all([peer(), peer(), peer()])
    const results = []
    for (const asker of askers) results.push(await code(asker.attest!.attest(await connect(asker, victim))))
    assert.deepEqual(results.slice(0, 2), ['BONDED', 'BONDED'])
    assert.notEqual(results[2], 'BONDED')
  })
})
