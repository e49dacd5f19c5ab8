/**
 * docs/PROTOCOLS.md's test vectors, recomputed from the code and compared with the hex in the
 * document itself, so the two cannot drift apart. The document holds them in fenced blocks tagged
 * `vectors` (one `name value` per line; long hex continues on indented lines; text in quotes) and
 * the §3 table of CBOR refusals between `<!-- cbor-refusals:begin/end -->`, whose inputs must be
 * the ones listed here and whose codes must be what the decoders return. Any other hex in code spans
 * and fenced blocks (runs of 3 tokens or 8 digits, abbreviations such as `2201bfdb…` and quoted text
 * included) must occur in some vector, so an edited illustration fails too.
 *
 * The attest vectors are also produced by running two AttestProtocol instances over an in-memory
 * stream pair with the nonces fixed, so the transcript is the protocol's own, not a re-derivation.
 *
 * To print the blocks after a deliberate change: VECTORS_PRINT=1 node --import tsx test/protocols/vectors.test.ts
 */
import '../../src/node/polyfills.js'
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import crypto from 'node:crypto'
import { syncBuiltinESMExports } from 'node:module'
import { streamPair } from '@libp2p/utils'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { sha512 } from '@noble/hashes/sha2.js'
import type { Connection, Stream } from '@libp2p/interface'
import {
  identityFromSeed, signRecord, decodeRecord, decodeCanonical, encodeCanonical, cidForBytes, rawCidForBytes, sha256Digest,
  concatBytes, lengthPrefixed, toHex, fromHex, utf8, bucketOf, ProviderCollection, ProviderCardType, RetirementType,
  COLLECTION_RECORD_TYPES, CcrfpType, RECORD_SIGNATURE_DOMAIN, RecordError, rateTableDigest, type Identity, type Rate
} from '../../src/market/index.js'
import { attestContext, attestReportData, softwareProofInput } from '../../src/attestation/binding.js'
import { cardEvidenceReportData, measurementManifestDigest } from '../../src/attestation/card-evidence.js'
import { AttestProtocol, ATTEST_MESSAGES, type Bond } from '../../src/protocols/attest.js'
import { SYNC_MESSAGES } from '../../src/protocols/sync.js'
import { EVIDENCE_MESSAGES } from '../../src/protocols/evidence.js'
import { decodeMessage } from '../../src/protocols/messages.js'

const DOC_PATH = new URL('../../docs/PROTOCOLS.md', import.meta.url)

// ---------------------------------------------------------------- the document

interface DocVectors {
  values: Map<string, string>
  /** The document's text outside fenced blocks and the refusals table (for the stray-hex sweep). */
  prose: string
  /** Lines of the fenced blocks that are not vector blocks. */
  fenced: string[]
  /** Rows of the CBOR refusals table: [form, input, decodeRecord, decodeCanonical]. */
  refusals: string[][]
}

function parseDoc (text: string): DocVectors {
  const values = new Map<string, string>()
  const prose: string[] = []
  const fenced: string[] = []
  const refusals: string[][] = []
  let inBlock = false
  let inFence = false
  let inTable = false
  let last: string | undefined
  for (const line of text.split('\n')) {
    if (inBlock) {
      if (line.trim() === '```') { inBlock = false; last = undefined; continue }
      if (line.trim() === '' || line.trimStart().startsWith('#')) continue
      if (/^\s/.test(line)) {
        assert.ok(last !== undefined, `continuation line without an entry: ${line}`)
        assert.ok(!values.get(last)!.startsWith('"'), `a text value cannot continue: ${line}`)
        values.set(last, values.get(last)! + line.trim().replace(/\s+/g, ''))
        continue
      }
      const m = /^(\S+)(?:\s+(.*))?$/.exec(line)
      assert.ok(m !== null, `bad vector line: ${line}`)
      const [, name, raw = ''] = m as unknown as [string, string, string | undefined]
      assert.ok(!values.has(name), `vector ${name} appears twice`)
      const value = raw.startsWith('"') ? raw.trim() : raw.replace(/\s+/g, '')
      if (!value.startsWith('"')) assert.match(value, /^[0-9a-f]*$/, `vector ${name} is neither lowercase hex nor "text"`)
      values.set(name, value)
      last = name
      continue
    }
    if (line.trim() === '```vectors') { inBlock = true; continue }
    if (line.trimStart().startsWith('```')) { inFence = !inFence; continue }
    if (inFence) { fenced.push(line); continue }
    if (line.includes('<!-- cbor-refusals:begin -->')) { inTable = true; continue }
    if (line.includes('<!-- cbor-refusals:end -->')) { inTable = false; continue }
    if (inTable) {
      if (/^\|\s*-/.test(line) || !line.startsWith('|')) continue
      const cells = line.split('|').slice(1, -1).map((c) => c.trim())
      if (cells[0] === 'Form') continue
      refusals.push(cells)
      continue
    }
    prose.push(line)
  }
  assert.equal(inBlock, false, 'unterminated vectors block')
  assert.equal(inTable, false, 'unterminated refusals table')
  assert.equal(inFence, false, 'unterminated fenced block')
  return { values, prose: prose.join('\n'), fenced, refusals }
}

// ---------------------------------------------------------------- the code's values

type Value = Uint8Array | string
/** Vectors in document order, grouped by the block they live in. */
type Blocks = Array<{ block: string, entries: Array<[string, Value]> }>

const seq = (start: number, length: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (start + i) & 0xff)
const fill = (byte: number, length: number): Uint8Array => new Uint8Array(length).fill(byte)
const PEER_ID_BYTES_HEADER = Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
const peerIdBytes = (identity: Identity): Uint8Array => concatBytes(PEER_ID_BYTES_HEADER, identity.publicKey)
const T0 = 1767225600 // 2026-01-01T00:00:00Z
const NETWORK = 'devnet'

function varint (n: number): Uint8Array {
  const out: number[] = []
  for (let v = n; ; v = Math.floor(v / 128)) {
    if (v < 128) { out.push(v); break }
    out.push((v % 128) | 0x80)
  }
  return Uint8Array.from(out)
}
const frame = (body: Uint8Array): Uint8Array => concatBytes(varint(body.length), body)

/** Fixed inputs shared by the computation and the live attest run. */
const EXAMPLE_SEED = concatBytes(new Uint8Array(31), Uint8Array.of(1))
const PROVIDER_SEED = sha256Digest(utf8('vector provider 23'))
const I_SEED = sha256Digest(utf8('vector initiator'))
const R_SEED = sha256Digest(utf8('vector responder'))
const I_NONCE = seq(0x00, 32)
const R_NONCE = seq(0x20, 32)
const MEASUREMENTS = { mrTd: fill(0x01, 48), rtmr: [fill(0x02, 48), fill(0x03, 48), fill(0x04, 48), fill(0x05, 48)] as [Uint8Array, Uint8Array, Uint8Array, Uint8Array], mrConfigId: fill(0x00, 48) }
const MANIFEST = measurementManifestDigest(MEASUREMENTS)

function computeVectors (): Blocks {
  const blocks: Blocks = []
  const block = (name: string): Array<[string, Value]> => {
    const entries: Array<[string, Value]> = []
    blocks.push({ block: name, entries })
    return entries
  }

  // §2: the example identity.
  const example = identityFromSeed(EXAMPLE_SEED)
  const identity = block('identity')
  identity.push(['example.seed', EXAMPLE_SEED], ['example.publicKey', example.publicKey], ['example.peerIdBytes', peerIdBytes(example)],
    ['example.did', `"${example.did}"`], ['example.peerId', `"${example.peerId}"`])

  // §3.1: one retirement, byte by byte.
  const retirement = signRecord(RetirementType, { providerId: example.did, retiredAtUnixSecs: T0 }, example)
  const body = encodeCanonical({ providerId: example.did, retiredAtUnixSecs: T0, $type: RetirementType.nsid, v: 1 })
  assert.deepEqual(sha256Digest(body), retirement.digest, 'the digest is sha256 of the body')
  const record = block('record')
  record.push(['retirement.body', body], ['retirement.bytes', retirement.bytes], ['retirement.digest', retirement.digest],
    ['retirement.cid', retirement.cid.bytes], ['retirement.cidString', `"${retirement.cid.toString()}"`],
    ['retirement.uri', `"${retirement.uri}"`], ['retirement.bucket', Uint8Array.of(bucketOf(example.did))])

  // §10.2: a card (its author's DID falls in the retirement's bucket, for §4.4).
  const provider = identityFromSeed(PROVIDER_SEED)
  const rates: Rate[] = [{ backend: 'tdx-1', cpuHourWei: 1_000_000_000_000n, memoryGiBHourWei: 100_000_000_000n, diskGiBHourWei: 1_000_000_000n }]
  const quoteCid = rawCidForBytes(utf8('vector quote'))
  const collateralCid = rawCidForBytes(utf8('vector collateral'))
  const card = signRecord(ProviderCardType, {
    providerId: provider.did,
    schemesSupported: ['vm.ssh'],
    attestationLevel: 'TdxRemote',
    attestationDigest: MANIFEST,
    capacityPerSecond: 1,
    feePerPartialWei: 1_000_000_000n,
    committedAtUnixSecs: T0,
    expiresAtUnixSecs: T0 + 7200,
    backends: [{ name: 'tdx-1', kind: 'bare-metal', regions: ['eu-west'], maxCpu: 8, maxMemoryMiB: 16384, maxDiskGiB: 100, tdx: true }],
    rates,
    rateTableDigest: rateTableDigest(rates),
    evidence: { quote: quoteCid, collateral: collateralCid },
    listenAddrs: ['/ip4/192.0.2.1/tcp/4001']
  }, provider)
  assert.equal(bucketOf(provider.did), bucketOf(example.did))

  // §4.4: the summary bucket both records share.
  const collection = new ProviderCollection()
  assert.equal(collection.apply(retirement, T0), 'retired')
  assert.equal(collection.apply(card, T0), 'added')
  const b = bucketOf(example.did)
  const bucket = collection.summary().buckets.subarray(32 * b, 32 * b + 32)
  assert.deepEqual(bucket, Uint8Array.from(retirement.digest, (x, i) => x ^ card.digest[i]!), 'the bucket XORs body digests')
  const summary = block('summary')
  summary.push(['summary.count', `"${collection.summary().count}"`], ['summary.bucket116', bucket])

  // §6: the sync worked example's small frames.
  const syncFrames = block('sync')
  const entry = { p: example.did, t: T0, r: true, d: retirement.digest }
  const emptySummary = frame(encodeCanonical({ count: 0, summary: new Uint8Array(8192) }))
  decodeMessage(emptySummary.subarray(2), SYNC_MESSAGES.summary)
  assert.equal(emptySummary.length, 2 + 8211)
  syncFrames.push(['sync.frame.summaryHead', emptySummary.subarray(0, emptySummary.length - 8192)])
  const messages: Array<[string, unknown, keyof typeof SYNC_MESSAGES]> = [
    ['sync.frame.buckets', { buckets: [b] }, 'buckets'],
    ['sync.frame.entries', { entries: [entry], more: false }, 'entries'],
    ['sync.frame.want', { want: [example.did] }, 'want'],
    ['sync.frame.records', { records: [retirement.bytes] }, 'records'],
    ['sync.frame.done', { done: true }, 'done']
  ]
  for (const [name, msg, schema] of messages) {
    const bytes = encodeCanonical(msg)
    decodeMessage(bytes, SYNC_MESSAGES[schema])
    syncFrames.push([name, frame(bytes)])
  }

  // §10.1: domain-separation strings (checked against the code by hashing, see below).
  const software = softwareProofInput(new Uint8Array(0))
  const domains = block('domains')
  domains.push(['domain.recordSig', RECORD_SIGNATURE_DOMAIN], ['domain.attestCtx', utf8('cmesh/attest/ctx/v1\0')],
    ['domain.attestReportData', utf8('cmesh/attest/v1\0')], ['domain.attestSoftware', software],
    ['domain.cardEvidence', utf8('cmesh/card-evidence/v1\0')])

  // §10.2: measurement manifest, card, card evidence.
  const manifestBytes = encodeCanonical({ mrTd: MEASUREMENTS.mrTd, rtmr: MEASUREMENTS.rtmr, mrConfigId: MEASUREMENTS.mrConfigId })
  assert.deepEqual(sha256Digest(manifestBytes), MANIFEST)
  const cardBlock = block('card')
  cardBlock.push(['manifest.bytes', manifestBytes], ['manifest.digest', MANIFEST],
    ['card.seed', PROVIDER_SEED], ['card.did', `"${provider.did}"`],
    ['card.rateTableDigest', card.value.rateTableDigest], ['rates.empty.digest', rateTableDigest([])],
    ['card.evidence.quote', quoteCid.bytes], ['card.evidence.collateral', collateralCid.bytes],
    ['card.bytes', card.bytes], ['card.digest', card.digest], ['card.cid', card.cid.bytes], ['card.cidString', `"${card.cid.toString()}"`],
    ['card.evidence.reportData', cardEvidenceReportData(provider.did, MANIFEST)])

  // §10.3: one attest exchange (I: no quote provider; R: a TDX node; both require Software).
  const I = identityFromSeed(I_SEED)
  const R = identityFromSeed(R_SEED)
  const helloI = encodeCanonical({ v: 1, nonce: I_NONCE, offer: 'Software', require: 'Software', manifest: new Uint8Array(32) })
  const helloR = encodeCanonical({ v: 1, nonce: R_NONCE, offer: 'TdxRemote', require: 'Software', manifest: MANIFEST })
  const ctx = attestContext(NETWORK, helloI, helloR)
  const reportI = attestReportData(peerIdBytes(I), peerIdBytes(R), R_NONCE, I_NONCE, ctx)
  const reportR = attestReportData(peerIdBytes(R), peerIdBytes(I), I_NONCE, R_NONCE, ctx)
  const sigI = I.sign(softwareProofInput(reportI))
  const sigR = R.sign(softwareProofInput(reportR))
  const evidenceI = encodeCanonical({ software: { sig: sigI } })
  const evidenceR = encodeCanonical({ software: { sig: sigR } })
  const transcript = sha256Digest(concatBytes(lengthPrefixed(helloI), lengthPrefixed(helloR), lengthPrefixed(evidenceI), lengthPrefixed(evidenceR)))
  const finish = encodeCanonical({ transcript, ok: true })
  for (const [bytes, schema] of [[helloI, ATTEST_MESSAGES.hello], [helloR, ATTEST_MESSAGES.hello], [evidenceI, ATTEST_MESSAGES.evidence], [evidenceR, ATTEST_MESSAGES.evidence], [finish, ATTEST_MESSAGES.finish]] as const) {
    decodeMessage(bytes, schema)
  }
  const attest = block('attest')
  attest.push(['attest.network', `"${NETWORK}"`],
    ['attest.I.seed', I_SEED], ['attest.I.publicKey', I.publicKey], ['attest.I.peerIdBytes', peerIdBytes(I)], ['attest.I.peerId', `"${I.peerId}"`],
    ['attest.R.seed', R_SEED], ['attest.R.publicKey', R.publicKey], ['attest.R.peerIdBytes', peerIdBytes(R)], ['attest.R.peerId', `"${R.peerId}"`],
    ['attest.hello.I', helloI], ['attest.hello.R', helloR], ['attest.lp.hello.I', lengthPrefixed(helloI)], ['attest.ctx', ctx],
    ['attest.reportData.I', reportI], ['attest.reportData.R', reportR],
    ['attest.softwareInput.I', softwareProofInput(reportI)], ['attest.sig.I', sigI], ['attest.sig.R', sigR],
    ['attest.evidence.I', evidenceI], ['attest.evidence.R', evidenceR], ['attest.transcript', transcript], ['attest.finish', finish])

  // §10.4: the evidence protocol's request and "missing" answer, as framed on the stream.
  const request = encodeCanonical({ cid: quoteCid })
  decodeMessage(request, EVIDENCE_MESSAGES.request)
  const missing = encodeCanonical({ missing: true })
  decodeMessage(missing, EVIDENCE_MESSAGES.response)
  block('evidence').push(['evidence.frame.request', frame(request)], ['evidence.frame.missing', frame(missing)])
  return blocks
}

const asDoc = (v: Value): string => (typeof v === 'string' ? v : toHex(v))

function printBlocks (blocks: Blocks): string {
  const out: string[] = []
  for (const { block, entries } of blocks) {
    out.push(`<!-- ${block} -->`, '```vectors')
    const width = Math.max(...entries.map(([n, v]) => (asDoc(v).length <= 64 ? n.length : 0)))
    for (const [name, v] of entries) {
      const value = asDoc(v)
      if (value.length <= 64 || value.startsWith('"')) out.push(`${name.padEnd(width)}  ${value}`.trimEnd())
      else {
        out.push(name)
        for (let i = 0; i < value.length; i += 64) out.push(`  ${value.slice(i, i + 64)}`)
      }
    }
    out.push('```', '')
  }
  return out.join('\n')
}

// ---------------------------------------------------------------- the CBOR refusals table

/** Inputs of the §3 table, in its order: `hex ‖ hh×N` (a byte repeated N times). */
const REFUSAL_INPUTS = [
  'a2 6176 01 6161 01',
  'a2 6176 01 6176 01',
  'a1 6176 1801',
  'a1 780176 01',
  'bf 6176 01 ff',
  'ff',
  'a1 6176 1c',
  'a1 6176',
  'a1 6176 5a ffffffff',
  'a1 6176 01 00',
  'a1 6176 f93c00',
  'a1 6176 fb3ff0000000000000',
  'a1 6176 fb7ff8000000000000',
  'a1 6176 c1 01',
  'a1 6176 d82a 42 0100',
  'a1 6176 e0',
  'a1 6176 f7',
  'a1 01 01',
  'a1 6176 61 ff',
  '81×16 ‖ a0',
  '9a 00020000 ‖ 00×131072',
  '5a 00010001 ‖ 00×65537'
]

function parseInput (expr: string): Uint8Array {
  const bytes: number[] = []
  for (const part of expr.split('‖').map((p) => p.trim())) {
    const repeat = /^([0-9a-f]{2})×(\d+)$/.exec(part)
    if (repeat !== null) for (let i = 0; i < Number(repeat[2]); i++) bytes.push(parseInt(repeat[1] as string, 16))
    else bytes.push(...fromHex(part.replace(/\s+/g, '')))
  }
  return Uint8Array.from(bytes)
}

/** What decodeRecord and decodeCanonical say, as the table spells it. */
function refusalCells (input: Uint8Array): [string, string] {
  const describe = (run: () => unknown, withReason: boolean): string => {
    try {
      run()
      return 'accepted'
    } catch (err) {
      assert.ok(err instanceof RecordError, `untyped refusal: ${String(err)}`)
      const code = `\`${err.code.replace(/^RECORD_/, '')}\``
      const reason = (err.meta as { reason?: string }).reason
      return withReason && reason !== undefined ? `${code} (\`${reason}\`)` : code
    }
  }
  return [
    describe(() => decodeRecord(input, [...COLLECTION_RECORD_TYPES, CcrfpType]), false),
    describe(() => decodeCanonical(input), true)
  ]
}

// ---------------------------------------------------------------- the live attest exchange

/**
 * Runs AttestProtocol on both ends of an in-memory stream pair with the nonces fixed (the code
 * draws them with node:crypto randomBytes, replaced for the two calls). The responder's handler is
 * entered first and draws its nonce synchronously, so R's nonce is the first one handed out.
 */
async function liveExchange (): Promise<{ initiator: Bond, responder: Bond }> {
  const [kI, kR] = [await generateKeyPairFromSeed('Ed25519', I_SEED), await generateKeyPairFromSeed('Ed25519', R_SEED)]
  const [pI, pR] = [peerIdFromPrivateKey(kI), peerIdFromPrivateKey(kR)]
  const [a, b] = await streamPair()
  let handler: ((stream: Stream, connection: Connection) => void) | undefined
  const registrar = (peerId: typeof pI): any => ({
    peerId,
    handle: async (_protocol: string, h: typeof handler) => { handler = h },
    unhandle: async () => {},
    dialProtocol: async () => { throw new Error('not used') },
    addEventListener: () => {},
    removeEventListener: () => {}
  })
  let responderBond: ((bond: Bond) => void) | undefined
  const responded = new Promise<Bond>((resolve) => { responderBond = resolve })
  const anchor = {} as any // never used: both sides prove Software
  const initiator = new AttestProtocol(registrar(pI), { network: NETWORK, identity: identityFromSeed(I_SEED), anchor, require: 'Software', manifest: new Uint8Array(32) })
  const responder = new AttestProtocol(registrar(pR), {
    network: NETWORK,
    identity: identityFromSeed(R_SEED),
    anchor,
    require: 'Software',
    manifest: MANIFEST,
    quoteProvider: {} as any, // makes R offer TdxRemote; I requires Software, so R never quotes
    onBond: (bond) => responderBond?.(bond)
  })
  await responder.start()
  assert.ok(handler !== undefined)
  const nonces = [R_NONCE, I_NONCE]
  const cjs = crypto as unknown as { randomBytes: (n: number) => Buffer }
  const original = cjs.randomBytes
  cjs.randomBytes = (n: number) => (n === 32 && nonces.length > 0 ? Buffer.from(nonces.shift() as Uint8Array) : original(n))
  syncBuiltinESMExports()
  try {
    handler(b, { id: 'r', remotePeer: pI, status: 'open' } as unknown as Connection)
    const bond = await initiator.attest({ id: 'i', remotePeer: pR, status: 'open', newStream: async () => a } as unknown as Connection)
    assert.equal(nonces.length, 0, 'the attest protocol no longer draws its nonces with randomBytes(32): update liveExchange')
    return { initiator: bond, responder: await responded }
  } finally {
    cjs.randomBytes = original
    syncBuiltinESMExports()
  }
}

// ---------------------------------------------------------------- the tests

describe('docs/PROTOCOLS.md test vectors', () => {
  const blocks = computeVectors()
  if (process.env.VECTORS_PRINT === '1') console.log(printBlocks(blocks))
  const doc = parseDoc(readFileSync(DOC_PATH, 'utf8'))
  const computed = new Map(blocks.flatMap(({ entries }) => entries.map(([n, v]) => [n, asDoc(v)] as const)))

  it('every vector in the document equals the value the code computes, and none is missing', () => {
    for (const [name, value] of computed) {
      assert.ok(doc.values.has(name), `vector ${name} is missing from the document; expected ${value}`)
      assert.equal(doc.values.get(name), value, `vector ${name} differs from the code`)
    }
    for (const name of doc.values.keys()) assert.ok(computed.has(name), `the document has a vector the test does not compute: ${name}`)
  })

  it('the domain-separation strings in the document are the ones the code hashes', () => {
    const d = (name: string): Uint8Array => fromHex(doc.values.get(name) ?? '')
    const helloI = fromHex(doc.values.get('attest.hello.I') ?? '')
    const helloR = fromHex(doc.values.get('attest.hello.R') ?? '')
    const x = utf8('x')
    assert.deepEqual(sha256Digest(concatBytes(d('domain.attestCtx'), lengthPrefixed(utf8(NETWORK)), lengthPrefixed(helloI), lengthPrefixed(helloR))),
      attestContext(NETWORK, helloI, helloR))
    assert.deepEqual(sha512(concatBytes(d('domain.attestReportData'), lengthPrefixed(x), lengthPrefixed(x), lengthPrefixed(x), lengthPrefixed(x), lengthPrefixed(x))),
      attestReportData(x, x, x, x, x))
    assert.deepEqual(sha512(concatBytes(d('domain.cardEvidence'), lengthPrefixed(x), lengthPrefixed(x))), cardEvidenceReportData('x', x))
    assert.deepEqual(concatBytes(d('domain.attestSoftware'), x), softwareProofInput(x))
    assert.deepEqual(d('domain.recordSig'), RECORD_SIGNATURE_DOMAIN)
    for (const name of ['domain.recordSig', 'domain.attestCtx', 'domain.attestReportData', 'domain.attestSoftware', 'domain.cardEvidence']) {
      assert.equal(d(name).at(-1), 0, `${name} ends in 0x00`)
    }
  })

  it('the peer-id bytes are the identity multihash libp2p derives from the same seed', async () => {
    for (const [seed, name] of [[EXAMPLE_SEED, 'example'], [I_SEED, 'attest.I'], [R_SEED, 'attest.R']] as const) {
      const peerId = peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seed))
      assert.equal(toHex(peerId.toMultihash().bytes), doc.values.get(`${name}.peerIdBytes`))
      assert.equal(`"${peerId.toString()}"`, doc.values.get(`${name}.peerId`))
    }
  })

  it('the records in the document decode as they are described', () => {
    for (const name of ['retirement', 'card']) {
      const bytes = fromHex(doc.values.get(`${name}.bytes`) ?? '')
      const record = decodeRecord(bytes, COLLECTION_RECORD_TYPES)
      assert.equal(toHex(record.digest), doc.values.get(`${name}.digest`))
      assert.equal(toHex(cidForBytes(bytes).bytes), doc.values.get(`${name}.cid`))
      assert.equal(toHex(concatBytes(Uint8Array.of(0x01, 0x71, 0x12, 0x20), sha256Digest(bytes))), doc.values.get(`${name}.cid`))
    }
  })

  it('AttestProtocol itself produces the document\'s transcript (both sides)', async () => {
    const { initiator, responder } = await liveExchange()
    assert.equal(toHex(initiator.transcript), doc.values.get('attest.transcript'))
    assert.equal(toHex(responder.transcript), doc.values.get('attest.transcript'))
    assert.equal(initiator.level, 'Software')
    assert.equal(toHex(initiator.manifest), doc.values.get('manifest.digest'), 'the initiator recorded R\'s declared manifest')
    assert.deepEqual(responder.manifest, new Uint8Array(32), 'a node without a quote provider declares 32 zero bytes')
  })

  it('the §3 table gives the codes decodeRecord and decodeCanonical return', () => {
    assert.equal(doc.refusals.length, REFUSAL_INPUTS.length, 'the table has one row per known input')
    doc.refusals.forEach((cells, i) => {
      assert.equal(cells.length, 4, `row ${i + 1}: ${cells.join(' | ')}`)
      const [form, input, record, canonical] = cells as [string, string, string, string]
      assert.equal(input.replace(/`/g, ''), REFUSAL_INPUTS[i], `row ${i + 1} (${form}): input`)
      const [gotRecord, gotCanonical] = refusalCells(parseInput(REFUSAL_INPUTS[i] as string))
      assert.equal(record, gotRecord, `row ${i + 1} (${form}): decodeRecord`)
      assert.equal(canonical, gotCanonical, `row ${i + 1} (${form}): decodeCanonical`)
    })
  })

  it('any other hex in the document is part of a vector', () => {
    const all = [...doc.values.values()].filter((v) => !v.startsWith('"'))
    const checked: string[] = []
    // Code spans and fenced lines, split into runs of hex groups, "text" (as UTF-8) and abbreviations
    // (`2201bfdb…`, `"did:key:z6Mk…"`); a run of 3 tokens or 8 hex digits must occur in some vector.
    const texts = [...[...doc.prose.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string), ...doc.fenced]
    for (const text of texts) {
      const runs: string[][] = [[]]
      for (const token of text.split(/\s+/).filter((t) => t !== '')) {
        if (/^(?:[0-9a-f]{2})+$|^[0-9a-f]{6,}…[0-9a-f]*$|^"[^"]*"$/.test(token)) runs.at(-1)!.push(token)
        else runs.push([])
      }
      for (const run of runs) {
        // A quoted text's "…" (UTF-8 e2 80 a6) is an abbreviation too.
        const hex = run.map((t) => t.startsWith('"') ? toHex(utf8(t.slice(1, -1).replace(/\\0/g, '\0'))).replace(/e280a6/g, '…') : t).join('')
        const digits = run.filter((t) => !t.startsWith('"')).join('').replace(/…/g, '').length
        if (digits === 0 || (run.length < 3 && digits < 8)) continue
        checked.push(run.join(' '))
        const re = new RegExp(hex.split('…').join('[0-9a-f]*?'))
        assert.ok(all.some((v) => re.test(v)), `"${run.join(' ')}" is not part of any vector`)
      }
    }
    assert.ok(checked.length >= 20, `the sweep checked only ${checked.length} hex strings: is it still looking?`)
    if (process.env.VECTORS_PRINT === '1') console.log(checked.join('\n'))
  })
})
