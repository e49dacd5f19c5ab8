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
 * Likewise the bid frames are read off a BidProtocol serving an in-memory stream. The contract
 * records (CCRFP → CCB | Decline → CCBA → CCR) are signed at fixed times with fixed seeds, the CCB's
 * and the decline's terms come from the bid engine, and the sealed payloads (user_data, receipt) use
 * fixed HPKE ephemeral keys; the test then decodes the document's bytes, cross-checks the chain and
 * opens the document's ciphertexts with the library.
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
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { CipherSuite } from '@hpke/core'
import { DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/dhkem-x25519'
import { Chacha20Poly1305 } from '@hpke/chacha20poly1305'
import {
  identityFromSeed, signRecord, decodeRecord, decodeCanonical, encodeCanonical, cidForBytes, rawCidForBytes, sha256Digest,
  concatBytes, lengthPrefixed, toHex, fromHex, utf8, bucketOf, ProviderCollection, ProviderCardType, RetirementType,
  COLLECTION_RECORD_TYPES, CcrfpType, RECORD_SIGNATURE_DOMAIN, RecordError, rateTableDigest, type Identity, type Rate,
  CcbType, DeclineType, CcbaType, CcrType, VouchType, strongRefTo, refersTo, userDataRef, userDataMatches, bidDeadline,
  decideBid, contractCostWei, BID_GRACE_SECS, CapacityLedger, checkCcb, checkCcba, checkCcr, checkDecline, choose,
  assetId, x402ResourceUrl, CcbapType, checkPaidAccept, fillWifSubject, DEFAULT_WIF_SUBJECT,
  datetimeFromUnixSecs, tryParseSize, sizeToMiB, sizeToGiB, formatBytes, CID, type ProviderCard, type SignedCcrfp
} from '../../src/market/index.js'
import { openBytes, openReceipt, receiptPublicKey, sshFingerprint, USER_DATA_INFO, RECEIPT_INFO, type Receipt } from '../../src/market/sealed-receipt.js'
import { BidProtocol, BID_MESSAGES, BID_MAX_MESSAGE_BYTES, type BidHandlers } from '../../src/protocols/bid.js'
import { attestContext, attestReportData, softwareProofInput } from '../../src/attestation/binding.js'
import { cardEvidenceReportData, measurementManifestDigest } from '../../src/attestation/card-evidence.js'
import { AttestProtocol, ATTEST_MESSAGES, type Bond } from '../../src/protocols/attest.js'
import { SYNC_MESSAGES } from '../../src/protocols/sync.js'
import { EVIDENCE_MESSAGES } from '../../src/protocols/evidence.js'
import { decodeMessage, framed } from '../../src/protocols/messages.js'

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

/** The contract vectors (§10.5–10.7): who signs, when, and the fixed X25519 keys. */
const REQUESTER_SEED = sha256Digest(utf8('vector requester'))
const SEAL_SK = sha256Digest(utf8('vector seal key'))
const RECEIPT_SK = sha256Digest(utf8('vector receipt key'))
const USER_DATA_SKE = sha256Digest(utf8('vector user_data ephemeral'))
const RECEIPT_SKE = sha256Digest(utf8('vector receipt ephemeral'))
const USER_DATA = utf8('#!/bin/sh\necho hello from cmesh\n')
const T_BID = T0 + 5
const T_ACCEPT = T0 + 40
const T_CCR = T0 + 60
const PROGRESS_AT_MS = T_ACCEPT * 1000 + 250
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH'
/** The schema checks only a private key's armour; this one is a placeholder, not a key. */
const PLACEHOLDER_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\ndmVjdG9yIHBsYWNlaG9sZGVy\n-----END OPENSSH PRIVATE KEY-----\n'
const REFUSED_DETAIL = 'attest first: this connection has no bond at the provider\'s floor'
const FAILED = { code: 'USER_DATA_MISMATCH', detail: 'the sealed user_data does not hash to the RFP\'s reference' }
/** Size spellings for §4.3 / §10.7: the grammar accepts the first list and refuses the second. */
const SIZES_ACCEPTED = ['1K', '512K', '4G', '20G', '100G', '1536M', '1T', '8191T', '8796093022207K']
const SIZES_REFUSED = ['0G', '04G', '4g', '4GB', '4Gi', '4.5G', '4', 'G', '+4G', '8192T', '9007199254740991K', '1000000000000000K']

const hpke = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() })

/** HPKE base-mode seal with a fixed ephemeral private key (RFC 9180's test hook), so the output is fixed. */
async function sealWith (skE: Uint8Array, recipient: Uint8Array, info: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<{ enc: Uint8Array, ct: Uint8Array }> {
  const ekm = { privateKey: await hpke.kem.deserializePrivateKey(skE), publicKey: await hpke.kem.deserializePublicKey(receiptPublicKey(skE)) }
  const sealed = await hpke.seal({ recipientPublicKey: await hpke.kem.deserializePublicKey(recipient), info, ekm }, plaintext, aad)
  return { enc: new Uint8Array(sealed.enc), ct: new Uint8Array(sealed.ct) }
}

async function computeVectors (): Promise<Blocks> {
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

  // §10.5: one contract. The requester asks the §10.2 card's provider (a bid, priced by the bid
  // engine) and the §2 example identity (a decline, reasoned by the bid engine), accepts the bid
  // with user_data sealed to the bid's key, and gets the CCR and the receipt sealed to its key.
  const requester = identityFromSeed(REQUESTER_SEED)
  const rfp = signRecord(CcrfpType, {
    requester: requester.did,
    createdAtUnixSecs: T0,
    cpus: 2,
    mem: '4G',
    disk: '20G',
    network: '100G',
    location: { country: 'IE', region: 'eu-west' },
    role: 'worker',
    user_data: userDataRef(USER_DATA),
    cmesh: { scheme: 'vm.ssh', tdx: true, floor: 'TdxRemote', expectedMeasurements: MANIFEST, priceCapWei: 10n ** 16n, durationSecs: 3600, bidWindowSecs: 30 }
  }, requester)
  const decision = decideBid({ card: card.value, rfp, capacity: CapacityLedger.fromCard(card.value), ownLevel: 'TdxRemote', ownMeasurements: MANIFEST, now: T_BID })
  assert.ok(decision.kind === 'bid', 'the §10.2 card bids on the §10.5 RFP')
  const offer = decision.offer
  assert.equal(offer.expiresAtUnixSecs, bidDeadline(rfp.value) + BID_GRACE_SECS)
  assert.equal(offer.costWei, contractCostWei(rates[0] as Rate, { cpus: 2, memMiB: 4096, diskGiB: 20 }, 3600))
  const sealKey = receiptPublicKey(SEAL_SK)
  const ccb = signRecord(CcbType, {
    embed: strongRefTo(rfp),
    bid: { cost: offer.costWei, currency: 'wei', frequency: 'one-time', prepay: false, x402: { base_url: '' } },
    provider: provider.did,
    createdAtUnixSecs: T_BID,
    cmesh: { expiresAtUnixSecs: offer.expiresAtUnixSecs, backend: offer.backend, region: offer.region, level: card.value.attestationLevel, cpus: offer.cpus, memMiB: offer.memMiB, diskGiB: offer.diskGiB, durationSecs: offer.durationSecs, sealKey }
  }, provider)
  const elsewhere: ProviderCard = { ...card.value, providerId: example.did, backends: card.value.backends.map((b) => ({ ...b, regions: ['us-east'] })) }
  const no = decideBid({ card: elsewhere, rfp, capacity: CapacityLedger.fromCard(elsewhere), ownLevel: 'TdxRemote', ownMeasurements: MANIFEST, now: T_BID })
  assert.ok(no.kind === 'decline')
  const decline = signRecord(DeclineType, { rfp: strongRefTo(rfp), provider: example.did, createdAtUnixSecs: T_BID, code: no.code, detail: no.detail }, example)
  const receiptKey = receiptPublicKey(RECEIPT_SK)
  const sealedUserData = await sealWith(USER_DATA_SKE, sealKey, USER_DATA_INFO, ccb.cid.bytes, USER_DATA)
  const ccba = signRecord(CcbaType, {
    embed: strongRefTo(rfp),
    bid: strongRefTo(ccb),
    requester: requester.did,
    createdAtUnixSecs: T_ACCEPT,
    cmesh: { receiptKey, userData: sealedUserData }
  }, requester)
  const ccr = signRecord(CcrType, {
    rfp: strongRefTo(rfp),
    bid: strongRefTo(ccb),
    ccba: strongRefTo(ccba),
    createdAt: datetimeFromUnixSecs(T_CCR),
    compute: { ipv4: '192.0.2.10' },
    provider: provider.did,
    createdAtUnixSecs: T_CCR
  }, provider)
  const receipt: Receipt = {
    host: '192.0.2.10',
    port: 2222,
    user: 'cmesh',
    privateKey: PLACEHOLDER_KEY,
    hostKeyFingerprint: sshFingerprint(HOST_KEY),
    hostKey: HOST_KEY,
    grantId: ccba.cid.toString(),
    validToUnixSecs: T_ACCEPT + ccb.value.cmesh.durationSecs
  }
  const receiptPlaintext = encodeCanonical(receipt)
  const sealedReceipt = await sealWith(RECEIPT_SKE, receiptKey, RECEIPT_INFO, ccr.cid.bytes, receiptPlaintext)
  const vouch = signRecord(VouchType, { truster: requester.did, subject: provider.did, createdAtUnixSecs: T0, note: 'ran a contract' }, requester)
  const contract = block('contract')
  contract.push(['contract.requester.seed', REQUESTER_SEED], ['contract.requester.did', `"${requester.did}"`],
    ['contract.userData', USER_DATA], ['contract.userDataRef', `"${rfp.value.user_data}"`],
    ['rfp.bytes', rfp.bytes], ['rfp.cidString', `"${rfp.cid.toString()}"`], ['rfp.uri', `"${rfp.uri}"`],
    ['ccb.sealKey.private', SEAL_SK], ['ccb.sealKey', sealKey], ['ccb.cost', `"${offer.costWei}"`],
    ['ccb.bytes', ccb.bytes], ['ccb.cid', ccb.cid.bytes], ['ccb.cidString', `"${ccb.cid.toString()}"`], ['ccb.uri', `"${ccb.uri}"`],
    ['decline.detail', `"${no.detail}"`], ['decline.bytes', decline.bytes], ['decline.cidString', `"${decline.cid.toString()}"`],
    ['ccba.receiptKey.private', RECEIPT_SK], ['ccba.receiptKey', receiptKey], ['ccba.bytes', ccba.bytes],
    ['ccba.cidString', `"${ccba.cid.toString()}"`], ['ccba.uri', `"${ccba.uri}"`],
    ['ccr.bytes', ccr.bytes], ['ccr.cid', ccr.cid.bytes], ['ccr.cidString', `"${ccr.cid.toString()}"`], ['ccr.uri', `"${ccr.uri}"`],
    ['vouch.bytes', vouch.bytes], ['vouch.cidString', `"${vouch.cid.toString()}"`])

  // §10.6: the two sealed payloads.
  const sealing = block('sealing')
  sealing.push(['userData.skE', USER_DATA_SKE], ['userData.enc', sealedUserData.enc], ['userData.ct', sealedUserData.ct],
    ['receipt.hostKey', `"${HOST_KEY}"`], ['receipt.hostKeyFingerprint', `"${receipt.hostKeyFingerprint}"`],
    ['receipt.plaintext', receiptPlaintext], ['receipt.skE', RECEIPT_SKE], ['receipt.enc', sealedReceipt.enc], ['receipt.ct', sealedReceipt.ct],
    ['receipt.knownHosts', `"[${receipt.host}]:${receipt.port} ${receipt.hostKey}"`])

  // §6c / §10.6: bid protocol frames (BidProtocol itself sends them, see the live test).
  const bidFrames = block('bid')
  const rfpRequest = encodeCanonical({ rfp: rfp.bytes })
  const bidMessages: Array<[string, unknown, keyof typeof BID_MESSAGES]> = [
    ['bid.frame.refused', { refused: { code: 'BID_NOT_BONDED', detail: REFUSED_DETAIL } }, 'answer'],
    ['bid.frame.progress', { progress: { stage: 'provision:starting', at: PROGRESS_AT_MS } }, 'provision'],
    ['bid.frame.failed', { failed: FAILED }, 'provision'],
    ['bid.frame.release', { release: { ccb: ccb.cid } }, 'request'],
    ['bid.frame.ok', { ok: true }, 'releaseAnswer']
  ]
  decodeMessage(rfpRequest, BID_MESSAGES.request)
  bidFrames.push(['bid.frame.rfpHead', frame(rfpRequest).subarray(0, frame(rfpRequest).length - rfp.bytes.length)])
  for (const [name, msg, schema] of bidMessages) {
    const bytes = encodeCanonical(msg)
    decodeMessage(bytes, BID_MESSAGES[schema])
    bidFrames.push([name, frame(bytes)])
  }

  // §10.7: the size grammar and the cost formula.
  for (const s of SIZES_ACCEPTED) assert.ok(tryParseSize(s) !== undefined, `${s} is a size`)
  for (const s of SIZES_REFUSED) assert.equal(tryParseSize(s), undefined, `${s} is not a size`)
  const sizes = block('sizes')
  sizes.push(['size.accepted', `"${SIZES_ACCEPTED.join(' ')}"`], ['size.refused', `"${SIZES_REFUSED.join(' ')}"`],
    ['size.4G.MiB', `"${sizeToMiB('4G')}"`], ['size.512K.MiB', `"${sizeToMiB('512K')}"`], ['size.1536M.GiB', `"${sizeToGiB('1536M')}"`],
    ['size.100G.GiB', `"${sizeToGiB('100G')}"`], ['size.format.1536MiB', `"${formatBytes(1536n * 1024n * 1024n)}"`],
    ['cost.example', `"${contractCostWei({ cpuHourWei: 1000n, memoryGiBHourWei: 1000n, diskGiBHourWei: 0n }, { cpus: 1, memMiB: 1536, diskGiB: 0 }, 90)}"`])

  // §10.8: a paid bid, its x402 resource, the CCBAP and the accept updated to name it; a WIF subject.
  const network = 'eip155:31337'
  const token = '0x5fbdb2315678afecb367f032d93f642f64180aa3'
  const paidCcb = signRecord(CcbType, {
    ...ccb.value,
    bid: { cost: offer.costWei, currency: assetId(network, token), frequency: 'one-time', prepay: true, x402: { base_url: 'http://192.0.2.20:8402/x402' } },
    wif: { issuer_uri: 'http://192.0.2.20:8402/wif', to_issue: 'jwt', token_path: '.cmesh/wif-credential', url_path: '.cmesh/wif-url', url_route: '/wif/token', subject: DEFAULT_WIF_SUBJECT }
  }, provider)
  const unpaid = signRecord(CcbaType, { ...ccba.value, bid: strongRefTo(paidCcb), cmesh: { ...ccba.value.cmesh, userData: await sealWith(USER_DATA_SKE, sealKey, USER_DATA_INFO, paidCcb.cid.bytes, USER_DATA) } }, requester)
  const txid = `0x${toHex(sha256Digest(utf8('vector settlement')))}`
  const ccbap = signRecord(CcbapType, { embed: strongRefTo(paidCcb), txid, requester: requester.did, createdAtUnixSecs: T_ACCEPT + 5, cmesh: { ccba: strongRefTo(unpaid), network, payer: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', amount: offer.costWei.toString() } }, requester)
  const paidCcba = signRecord(CcbaType, { ...unpaid.value, payment: strongRefTo(ccbap) }, requester)
  checkPaidAccept(paidCcba, unpaid, ccbap, paidCcb)
  assert.equal(paidCcba.uri, unpaid.uri, 'the paid accept is an update of the same record')
  block('payment').push(['payment.ccb.currency', `"${paidCcb.value.bid.currency}"`], ['payment.ccb.bytes', paidCcb.bytes], ['payment.ccba.unpaid.cidString', `"${unpaid.cid.toString()}"`],
    ['payment.x402.url', `"${x402ResourceUrl(paidCcb.value.bid.x402.base_url, unpaid.uri, unpaid.cid.toString())}"`],
    ['payment.ccbap.bytes', ccbap.bytes], ['payment.ccbap.cidString', `"${ccbap.cid.toString()}"`], ['payment.ccba.paid.cidString', `"${paidCcba.cid.toString()}"`],
    ['wif.subject', `"${fillWifSubject(DEFAULT_WIF_SUBJECT, { ctx: unpaid.cid.toString(), did: requester.did, role: rfp.value.role })}"`])
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

// ---------------------------------------------------------------- the live bid protocol

/** A BidProtocol serving one in-memory stream; returns the requester's end. */
async function bidStream (bonded: boolean, handlers: BidHandlers, remotePeer: PeerId): Promise<Stream> {
  const [a, b] = await streamPair()
  let handler: ((stream: Stream, connection: Connection) => void) | undefined
  const registrar = { handle: async (_protocol: string, h: typeof handler) => { handler = h }, unhandle: async () => {} }
  const bid = new BidProtocol(registrar, { network: NETWORK, isBonded: () => bonded, handlers, now: () => PROGRESS_AT_MS })
  await bid.start()
  assert.ok(handler !== undefined)
  handler(b, { id: 'p', remotePeer, status: 'open' } as unknown as Connection)
  return a
}

// ---------------------------------------------------------------- the tests

const BLOCKS = await computeVectors()

describe('docs/PROTOCOLS.md test vectors', () => {
  const blocks = BLOCKS
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

  const hex = (name: string): Uint8Array => fromHex(doc.values.get(name) ?? '')
  const text = (name: string): string => (doc.values.get(name) ?? '').slice(1, -1)

  it('the contract records in the document decode, point at each other and pass the cross-checks', () => {
    const rfp = decodeRecord(hex('rfp.bytes'), [CcrfpType])
    const ccb = decodeRecord(hex('ccb.bytes'), [CcbType])
    const decline = decodeRecord(hex('decline.bytes'), [DeclineType])
    const ccba = decodeRecord(hex('ccba.bytes'), [CcbaType])
    const ccr = decodeRecord(hex('ccr.bytes'), [CcrType])
    const vouch = decodeRecord(hex('vouch.bytes'), [VouchType])
    for (const [name, r] of [['rfp', rfp], ['ccb', ccb], ['decline', decline], ['ccba', ccba], ['ccr', ccr], ['vouch', vouch]] as const) {
      assert.equal(r.cid.toString(), text(`${name}.cidString`), `${name} CID`)
      if (doc.values.has(`${name}.uri`)) assert.equal(r.uri, text(`${name}.uri`), `${name} URI`)
    }
    assert.equal(toHex(ccb.cid.bytes), doc.values.get('ccb.cid'))
    assert.equal(toHex(ccr.cid.bytes), doc.values.get('ccr.cid'))
    // Authors: the requester signs the RFP and the accept, the provider the bid and the receipt.
    assert.equal(rfp.author, text('contract.requester.did'))
    assert.equal(ccba.author, rfp.value.requester)
    assert.equal(ccb.author, text('card.did'))
    assert.equal(ccr.author, ccb.value.provider)
    assert.equal(decline.author, text('example.did'))
    // The strongRef chain, and its wire form: {uri, cid} with the CID as its base32 string.
    for (const [ref, target] of [[ccb.value.embed, rfp], [decline.value.rfp, rfp], [ccba.value.embed, rfp], [ccba.value.bid, ccb], [ccr.value.rfp, rfp], [ccr.value.bid, ccb], [ccr.value.ccba, ccba]] as const) {
      assert.ok(refersTo(ref, target))
    }
    const wire = decodeCanonical(ccr.bytes) as Record<string, unknown>
    assert.deepEqual(wire.ccba, { uri: text('ccba.uri'), cid: text('ccba.cidString') })
    checkCcb(ccb, rfp, T_BID)
    checkDecline(decline, rfp)
    checkCcba(ccba, ccb, rfp, T_ACCEPT)
    checkCcr(ccr, ccba, ccb, rfp)
    assert.throws(() => { checkCcb(ccb, rfp, ccb.value.cmesh.expiresAtUnixSecs) }, (err: unknown) => (err as { code?: string }).code === 'CONTRACT_EXPIRED')
    assert.equal(ccb.value.bid.cost.toString(), text('ccb.cost'))
    assert.equal(toHex(ccb.value.cmesh.sealKey), doc.values.get('ccb.sealKey'))
    assert.equal(decline.value.detail, text('decline.detail'))
    assert.equal(rfp.value.user_data, text('contract.userDataRef'))
    assert.ok(userDataMatches(rfp.value.user_data, hex('contract.userData')))
    // The requester's policy (only-me, with the document's vouch) chooses this bid.
    const choice = choose({
      me: rfp.value.requester,
      bids: [{ ccb, verifiedLevel: 'TdxRemote', simulated: false, measurements: fromHex(doc.values.get('manifest.digest') ?? '') }],
      trust: [vouch],
      policy: { mode: 'only-me', floor: rfp.value.cmesh.floor },
      now: T_ACCEPT,
      rfp: rfp as SignedCcrfp
    })
    assert.equal(choice.chosen?.ccb.cid.toString(), ccb.cid.toString(), JSON.stringify(choice.refused))
  })

  it('the document\'s sealed payloads open with its keys, and only with its info and aad', async () => {
    const ccba = decodeRecord(hex('ccba.bytes'), [CcbaType])
    const userData = { enc: hex('userData.enc'), ct: hex('userData.ct') }
    assert.deepEqual(ccba.value.cmesh.userData, userData)
    assert.equal(toHex(receiptPublicKey(hex('ccb.sealKey.private'))), doc.values.get('ccb.sealKey'))
    assert.equal(toHex(receiptPublicKey(hex('ccba.receiptKey.private'))), doc.values.get('ccba.receiptKey'))
    assert.equal(toHex(ccba.value.cmesh.receiptKey), doc.values.get('ccba.receiptKey'))
    assert.equal(toHex(receiptPublicKey(hex('userData.skE'))), doc.values.get('userData.enc'), 'enc is the ephemeral public key')
    assert.equal(toHex(receiptPublicKey(hex('receipt.skE'))), doc.values.get('receipt.enc'))
    assert.deepEqual(await openBytes(userData, hex('ccb.sealKey.private'), USER_DATA_INFO, hex('ccb.cid')), hex('contract.userData'))
    const sealed = { enc: hex('receipt.enc'), ct: hex('receipt.ct') }
    const receipt = await openReceipt(sealed, hex('ccba.receiptKey.private'), hex('ccr.cid'))
    assert.deepEqual(encodeCanonical(receipt), hex('receipt.plaintext'))
    assert.equal(receipt.grantId, text('ccba.cidString'))
    assert.equal(receipt.hostKey, text('receipt.hostKey'))
    assert.equal(receipt.hostKeyFingerprint, text('receipt.hostKeyFingerprint'))
    assert.equal(`[${receipt.host}]:${receipt.port} ${receipt.hostKey}`, text('receipt.knownHosts'))
    const refused = (err: unknown): boolean => (err as { code?: string }).code === 'SEAL_OPEN_FAILED'
    await assert.rejects(openReceipt(sealed, hex('ccba.receiptKey.private'), hex('ccb.cid')), refused)
    await assert.rejects(openBytes(userData, hex('ccb.sealKey.private'), RECEIPT_INFO, hex('ccb.cid')), refused)
    await assert.rejects(openBytes(userData, hex('ccb.sealKey.private'), USER_DATA_INFO, hex('ccr.cid')), refused)
  })

  it('BidProtocol itself sends the document\'s bid frames, and carries the contract records', async () => {
    const peer = peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', REQUESTER_SEED))
    const released: string[] = []
    const handlers: BidHandlers = {
      onRfp: async () => ({ ccb: hex('ccb.bytes') }),
      onAccept: async (ccba, _peer, progress) => {
        progress('provision:starting')
        return ccba.length === 1 ? { failed: FAILED } : { ccr: hex('ccr.bytes'), receipt: { enc: hex('receipt.enc'), ct: hex('receipt.ct') } }
      },
      onPaid: async () => ({ failed: FAILED }),
      onRelease: async (ccb) => { released.push(ccb.toString()) }
    }
    const frameOf = async (lp: ReturnType<typeof framed>): Promise<string> => toHex(frame((await lp.read()).subarray()))
    // Unbonded: the refusal comes before any request is read (none is written here).
    const unbonded = await bidStream(false, handlers, peer)
    assert.equal(await frameOf(framed(unbonded, BID_MAX_MESSAGE_BYTES)), doc.values.get('bid.frame.refused'))
    await unbonded.close()
    // An accept that fails: a progress message, then the failure.
    const failing = await bidStream(true, handlers, peer)
    const lp = framed(failing, BID_MAX_MESSAGE_BYTES)
    await lp.write(encodeCanonical({ accept: Uint8Array.of(1) }))
    assert.equal(await frameOf(lp), doc.values.get('bid.frame.progress'))
    assert.equal(await frameOf(lp), doc.values.get('bid.frame.failed'))
    await failing.close()
    // A release, and the rfp request's head.
    const releasing = await bidStream(true, handlers, peer)
    const rlp = framed(releasing, BID_MAX_MESSAGE_BYTES)
    const head = hex('bid.frame.rfpHead')
    assert.deepEqual(frame(encodeCanonical({ rfp: hex('rfp.bytes') })).subarray(0, head.length), head)
    await rlp.write(hex('bid.frame.release').subarray(1)) // the body: the frame less its one-byte prefix
    assert.equal(await frameOf(rlp), doc.values.get('bid.frame.ok'))
    await releasing.close()
    assert.deepEqual(released, [text('ccb.cidString')])
    // The requester's side of the protocol, end to end.
    const requester = new BidProtocol({ handle: async () => {}, unhandle: async () => {} }, { network: NETWORK, isBonded: () => false })
    const connect = async (): Promise<Connection> => { const s = await bidStream(true, handlers, peer); return { newStream: async () => s } as unknown as Connection }
    assert.deepEqual(await requester.requestBid(await connect(), hex('rfp.bytes')), { ccb: hex('ccb.bytes') })
    const stages: string[] = []
    const done = await requester.accept(await connect(), hex('ccba.bytes'), { onProgress: (stage) => stages.push(stage) })
    assert.deepEqual(stages, ['provision:starting'])
    assert.deepEqual(done, { ccr: hex('ccr.bytes'), receipt: { enc: hex('receipt.enc'), ct: hex('receipt.ct') } })
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
