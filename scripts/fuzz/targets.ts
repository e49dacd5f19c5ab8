/**
 * What the fuzzer feeds and to which decoder: signed records (decodeRecord, with the type lists
 * gossip, sync and the contract flow use), every stream message (decodeMessage: decodeCanonical +
 * the protocol's schema, see wire-schemas.ts; for sync and bid also the records inside), TDX quotes (parseTdxQuote, and verifyTdxQuote on fewer inputs)
 * and collateral (parseCollateral, and verification with it). Seeds are built here from fixed
 * keys and the TEST-ONLY quote simulator, so every run starts from the same bytes.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { webcrypto } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import { z } from 'zod'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  identityFromSeed, signRecord, decodeRecord, rateTableDigest, encodeCanonical, rawCidForBytes, utf8, toHex, bytesEqual,
  ProviderCardType, RetirementType, CcrfpType, userDataRef, COLLECTION_RECORD_TYPES, RecordError, SUMMARY_BUCKETS,
  CcbType, DeclineType, CcbaType, CcrType, VouchType, DenounceType, TRUST_RECORD_TYPES, CCBAP_NSID, strongRefTo,
  HeartbeatType, TerminationType, CcbapType,
  datetimeFromUnixSecs, parseDatetimeMs, formatAtUri, tidFromTime, cidForBytes, type SignedCcrfp,
  type AnyRecordType, type Identity, type ProviderCard, type Rate, type SignedRecord
} from '../../src/market/index.js'
import { decodeMessage, MessageError } from '../../src/protocols/messages.js'
import { parseTdxQuote, type TdxQuote } from '../../src/attestation/quote.js'
import { parseCollateral, type Collateral } from '../../src/attestation/collateral.js'
import { AttestationError } from '../../src/attestation/errors.js'
import { verifyTdxQuote } from '../../src/attestation/tdx-verifier.js'
import { trustAnchorFromDer, type TrustAnchor } from '../../src/attestation/trust-anchor.js'
import { tcbPolicy } from '../../src/attestation/policy.js'
import { createTestPki, createCollateral, createQuote, testRootDer, type TestPki } from '../../src/attestation/simulator.js'
import { parseTree, type CborNode } from './cbor-tree.js'
import { collectDonors, mutateCbor, type Mutant } from './mutate-cbor.js'
import { mutateQuote, quoteParts } from './mutate-quote.js'
import { mutateCollateral } from './mutate-json.js'
import { syncSchema, attestSchema, evidenceSchema, bidSchema, contractSchema, type WireSchema } from './wire-schemas.js'
import type { Acceptance, FuzzTarget } from './harness.js'
import type { Rng } from './rng.js'
import { copy } from './copy.js'

const T0 = 1_800_000_000

export function fuzzIdentity (i: number): Identity {
  return identityFromSeed(sha256(utf8(`cmesh fuzz identity ${i}`)))
}

function card (identity: Identity, overrides: Partial<ProviderCard> = {}): Uint8Array {
  const rates: Rate[] = overrides.rates ?? [
    { backend: 'local', cpuHourWei: 1000n, memoryGiBHourWei: 100n, diskGiBHourWei: 10n },
    { backend: 'aws', region: 'eu-west-1', cpuHourWei: 2000n, memoryGiBHourWei: 200n, diskGiBHourWei: 20n }
  ]
  const value: ProviderCard = {
    providerId: identity.did,
    schemesSupported: ['vm.ssh'],
    attestationLevel: 'Software',
    attestationDigest: sha256(utf8('software identity')),
    capacityPerSecond: 10,
    feePerPartialWei: 1_000_000_000n,
    committedAtUnixSecs: T0,
    expiresAtUnixSecs: T0 + 3600,
    backends: [
      { name: 'local', kind: 'local', regions: ['local'], maxCpu: 4, maxMemoryMiB: 8192, maxDiskGiB: 50, tdx: false },
      { name: 'aws', kind: 'aws-ec2', regions: ['eu-west-1', 'us-east-1'], maxCpu: 64, maxMemoryMiB: 262144, maxDiskGiB: 2000, tdx: true }
    ],
    rates,
    rateTableDigest: rateTableDigest(rates),
    listenAddrs: ['/ip4/127.0.0.1/tcp/4001'],
    ...overrides
  }
  return copy(signRecord(ProviderCardType, value, identity).bytes)
}

interface RecordSeeds { bytes: Uint8Array[], signers: Identity[] }

function recordSeeds (): Record<'card' | 'retirement' | 'ccrfp', RecordSeeds> {
  const a = fuzzIdentity(1)
  const b = fuzzIdentity(2)
  const c = fuzzIdentity(3)
  const quoteCid = rawCidForBytes(utf8('quote'))
  const collateralCid = rawCidForBytes(utf8('collateral'))
  return {
    card: {
      bytes: [
        card(a),
        card(b, {
          attestationLevel: 'TdxRemote',
          evidence: { quote: quoteCid, collateral: collateralCid },
          successor: c.did,
          buildRecipe: { source: 'https://example.org/image.git', command: 'make manifest', manifest: 'out/manifest.json' },
          schemesSupported: ['vm.ssh', 'vm.ssh.tdx'],
          listenAddrs: ['/ip4/127.0.0.1/tcp/4001', '/dns4/node.example.org/tcp/4001']
        }),
        card(c, { rates: [] })
      ],
      signers: [a, b, c]
    },
    retirement: {
      bytes: [
        copy(signRecord(RetirementType, { providerId: a.did, retiredAtUnixSecs: T0 }, a).bytes),
        copy(signRecord(RetirementType, { providerId: b.did, retiredAtUnixSecs: T0 + 1, successor: c.did, reason: 'key rotation' }, b).bytes)
      ],
      signers: [a, b]
    },
    ccrfp: {
      bytes: [
        copy(signRecord(CcrfpType, {
          requester: a.did,
          createdAtUnixSecs: T0,
          cpus: 2,
          mem: '4G',
          disk: '20G',
          network: '500G',
          role: 'worker',
          user_data: userDataRef('user data'),
          cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 18n, durationSecs: 3600, bidWindowSecs: 30 }
        }, a).bytes),
        copy(signRecord(CcrfpType, {
          requester: b.did,
          createdAtUnixSecs: T0 + 5,
          cpus: 8,
          mem: '16G',
          disk: '100G',
          network: '1T',
          location: { country: 'IRL', region: 'eu-west-1' },
          role: 'builder',
          user_data: userDataRef('other user data'),
          cmesh: { scheme: 'vm.ssh', tdx: true, floor: 'TdxRemote', expectedMeasurements: sha256(utf8('manifest')), priceCapWei: 5n, durationSecs: 600, bidWindowSecs: 600 }
        }, b).bytes)
      ],
      signers: [a, b]
    }
  }
}

type ContractKind = 'ccb' | 'decline' | 'ccba' | 'ccbap' | 'ccr' | 'vouch' | 'denounce' | 'heartbeat' | 'termination'

/**
 * Two of each contract record, chained onto the two CCRFP seeds: every optional field present in
 * one seed and absent in the other, a bid cost beyond 2^53, a datetime with a fraction and an offset.
 */
function contractSeeds (ccrfp: RecordSeeds): Record<ContractKind, RecordSeeds> {
  const a = fuzzIdentity(1)
  const b = fuzzIdentity(2)
  const c = fuzzIdentity(3)
  const d32 = (s: string): Uint8Array => sha256(utf8(s))
  const bytesOf = (r: { bytes: Uint8Array }): Uint8Array => copy(r.bytes)
  // rfp1 by a, rfp2 by b (recordSeeds).
  const [rfp1, rfp2] = ccrfp.bytes.map((bytes) => decodeRecord(bytes, [CcrfpType])) as [SignedCcrfp, SignedCcrfp]
  const ccb1 = signRecord(CcbType, {
    embed: strongRefTo(rfp1),
    bid: { cost: 2_420_000_000_000n, currency: 'wei', frequency: 'one-time', prepay: false, x402: { base_url: '' } },
    provider: b.did,
    createdAtUnixSecs: T0 + 1,
    cmesh: { expiresAtUnixSecs: T0 + 90, backend: 'local', region: 'local', level: 'Software', cpus: 2, memMiB: 4096, diskGiB: 20, durationSecs: 3600, sealKey: d32('seal 1') }
  }, b)
  const ccb2 = signRecord(CcbType, {
    embed: strongRefTo(rfp2),
    bid: { cost: (1n << 64n) - 1n, currency: 'eip155:8453/erc20:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913', frequency: 'one-time', prepay: true, x402: { base_url: 'https://pay.example.org/x402' } },
    wif: { issuer_uri: 'https://issuer.example.org', to_issue: 'token', token_path: '/run/token', url_path: '/wif', url_route: 'a/b', subject: 'sub' },
    provider: c.did,
    createdAtUnixSecs: T0 + 6,
    cmesh: { expiresAtUnixSecs: T0 + 3606, backend: 'aws', region: 'eu-west-1', level: 'TdxRemote', cpus: 8, memMiB: 16384, diskGiB: 100, durationSecs: 600, sealKey: d32('seal 2') }
  }, c)
  const decline1 = signRecord(DeclineType, { rfp: strongRefTo(rfp1), provider: c.did, createdAtUnixSecs: T0 + 2, code: 'NO_CAPACITY' as const, detail: 'no backend has 2 cpus, 4096 MiB, 20 GiB free' }, c)
  const decline2 = signRecord(DeclineType, { rfp: strongRefTo(rfp2), provider: a.did, createdAtUnixSecs: T0 + 7, code: 'POLICY_REFUSED' as const, detail: '' }, a)
  const ccba1 = signRecord(CcbaType, {
    embed: strongRefTo(rfp1),
    bid: strongRefTo(ccb1),
    requester: a.did,
    createdAtUnixSecs: T0 + 40,
    cmesh: { receiptKey: d32('receipt 1'), userData: { enc: d32('enc 1'), ct: new Uint8Array(48).fill(0x5a) } }
  }, a)
  const ccba2 = signRecord(CcbaType, {
    embed: strongRefTo(rfp2),
    bid: strongRefTo(ccb2),
    payment: { uri: formatAtUri({ did: b.did, nsid: CCBAP_NSID, rkey: tidFromTime(BigInt(T0 + 50) * 1_000_000n) }), cid: cidForBytes(utf8('payment')) },
    requester: b.did,
    createdAtUnixSecs: T0 + 50,
    cmesh: { receiptKey: d32('receipt 2'), userData: { enc: d32('enc 2'), ct: new Uint8Array(16) } }
  }, b)
  const ccr1 = signRecord(CcrType, {
    rfp: strongRefTo(rfp1),
    bid: strongRefTo(ccb1),
    ccba: strongRefTo(ccba1),
    createdAt: datetimeFromUnixSecs(T0 + 100),
    compute: { ipv4: '192.0.2.10' },
    provider: b.did,
    createdAtUnixSecs: T0 + 100
  }, b)
  const offsetTime = '2027-01-15T10:00:00.123456+02:00'
  const ccr2 = signRecord(CcrType, {
    rfp: strongRefTo(rfp2),
    bid: strongRefTo(ccb2),
    ccba: strongRefTo(ccba2),
    createdAt: offsetTime,
    compute: { ipv4: '198.51.100.7', ipv6: '2001:db8::ffff:192.0.2.1' },
    provider: c.did,
    createdAtUnixSecs: Math.floor((parseDatetimeMs(offsetTime) as number) / 1000)
  }, c)
  // Lifecycle records (§6g): full usage in one, the least in the other; a provider's end and a requester's request.
  const heartbeat1 = signRecord(HeartbeatType, { contract: strongRefTo(ccba1), provider: b.did, seq: 1, atUnixSecs: T0 + 130, periodSecs: 30, usage: { uptimeSecs: 30, cpuMillis: 1250, memMiB: 4096 } }, b)
  const heartbeat2 = signRecord(HeartbeatType, { contract: strongRefTo(ccba2), provider: c.did, seq: 2 ** 40, atUnixSecs: T0 + 600, periodSecs: 3600, usage: { uptimeSecs: 0 } }, c)
  const termination1 = signRecord(TerminationType, { contract: strongRefTo(ccba1), by: b.did, reason: 'EXPIRED', detail: 'valid-to reached', atUnixSecs: T0 + 3700, usage: { uptimeSecs: 3600, cpuMillis: 99, memMiB: 4096 } }, b)
  const termination2 = signRecord(TerminationType, { contract: strongRefTo(ccba1), by: a.did, reason: 'REQUESTER', detail: '', atUnixSecs: T0 + 200 }, a)
  // Payment records (§6f): the first payment of the paid bid, and a later period's.
  const ccbap1 = signRecord(CcbapType, { embed: strongRefTo(ccb2), txid: `0x${'ab'.repeat(32)}`, requester: b.did, createdAtUnixSecs: T0 + 45, cmesh: { ccba: strongRefTo(ccba1), network: 'eip155:8453', payer: `0x${'11'.repeat(20)}`, amount: ((1n << 64n) - 1n).toString() } }, b)
  const ccbap2 = signRecord(CcbapType, { embed: strongRefTo(ccb2), txid: `0x${'0'.repeat(64)}`, requester: b.did, createdAtUnixSecs: T0 + 700, cmesh: { ccba: strongRefTo(ccba2), network: 'eip155:1', payer: `0x${'0'.repeat(40)}`, amount: '0' } }, b)
  return {
    ccbap: { bytes: [bytesOf(ccbap1), bytesOf(ccbap2)], signers: [b, b] },
    heartbeat: { bytes: [bytesOf(heartbeat1), bytesOf(heartbeat2)], signers: [b, c] },
    termination: { bytes: [bytesOf(termination1), bytesOf(termination2)], signers: [b, a] },
    ccb: { bytes: [bytesOf(ccb1), bytesOf(ccb2)], signers: [b, c] },
    decline: { bytes: [bytesOf(decline1), bytesOf(decline2)], signers: [c, a] },
    ccba: { bytes: [bytesOf(ccba1), bytesOf(ccba2)], signers: [a, b] },
    ccr: { bytes: [bytesOf(ccr1), bytesOf(ccr2)], signers: [b, c] },
    vouch: {
      bytes: [bytesOf(signRecord(VouchType, { truster: a.did, subject: b.did, createdAtUnixSecs: T0 }, a)),
        bytesOf(signRecord(VouchType, { truster: b.did, subject: c.did, createdAtUnixSecs: T0 + 1, note: 'ran a contract' }, b))],
      signers: [a, b]
    },
    denounce: {
      bytes: [bytesOf(signRecord(DenounceType, { truster: a.did, subject: c.did, createdAtUnixSecs: T0, note: 'never delivered' }, a)),
        bytesOf(signRecord(DenounceType, { truster: c.did, subject: a.did, createdAtUnixSecs: T0 + 1 }, c))],
      signers: [a, c]
    }
  }
}

function trees (seeds: Uint8Array[]): Array<CborNode | undefined> {
  return seeds.map((s) => { try { return parseTree(s) } catch { return undefined } })
}

const hexSet = (seeds: Uint8Array[]): Set<string> => new Set(seeds.map(toHex))

/**
 * CBOR mutants; a quarter of those that still decode are re-encoded canonically, so they get past
 * the canonical check to the type, schema and signature steps instead of stopping at it.
 */
function cborMutator (seeds: Uint8Array[], extraDonors: Uint8Array[] = []): (rng: Rng, seed: number) => Mutant {
  const parsed = trees(seeds)
  const init = collectDonors([...parsed, ...trees(extraDonors)].filter((t): t is CborNode => t !== undefined))
  return (rng, i) => {
    const m = mutateCbor(rng, seeds[i] as Uint8Array, parsed[i], init)
    if (!rng.chance(0.25)) return m
    try {
      return { bytes: copy(encodeCanonical(dagCbor.decode(m.bytes))), ops: [...m.ops, 'canonical'] }
    } catch {
      return m
    }
  }
}

/** Re-signs a mutated record's map with the seed's key now and then, so the schema and semantic checks see it. */
function resigning (mutate: (rng: Rng, seed: number) => Mutant, signers: Identity[]): (rng: Rng, seed: number) => Mutant {
  return (rng, i) => {
    const m = mutate(rng, i)
    if (!rng.chance(0.2)) return m
    let map: unknown
    try { map = dagCbor.decode(m.bytes) } catch { return m }
    if (map === null || typeof map !== 'object' || Array.isArray(map) || map instanceof Uint8Array) return m
    const { sig: _sig, ...body } = map as Record<string, unknown>
    let encoded: Uint8Array
    try { encoded = encodeCanonical(body) } catch { return m }
    const sig = (signers[i] as Identity).sign(new Uint8Array([...utf8('cmesh/record-sig/v1\0'), ...encoded]))
    try {
      return { bytes: encodeCanonical({ ...body, sig }), ops: [...m.ops, 'resign'], resigned: true }
    } catch {
      return m
    }
  }
}

function recordTarget (name: string, seeds: RecordSeeds, types: readonly AnyRecordType[], note: string): FuzzTarget {
  const originals = hexSet(seeds.bytes)
  return {
    name,
    seeds: seeds.bytes,
    mutate: resigning(cborMutator(seeds.bytes), seeds.signers),
    decode: (bytes) => decodeRecord(bytes, types),
    codeOf: (err) => err instanceof RecordError ? err.code : undefined,
    isCatchAll: (err) => err instanceof RecordError && (err.meta as { unexpected?: boolean }).unexpected === true,
    // decodeRecord only accepts canonical bytes, so an equivalent encoding cannot exist.
    classify: (value) => originals.has(toHex((value as SignedRecord<unknown>).bytes)) ? 'original' : 'other',
    signed: true,
    note
  }
}

function messageCode (err: unknown): string | undefined {
  if (!(err instanceof MessageError) || err.kind !== 'malformed') return undefined
  const cause = (err as { cause?: unknown }).cause
  return cause instanceof RecordError ? `malformed/${cause.code}` : cause === undefined ? 'malformed/schema' : 'malformed/schema-threw'
}

function wireTarget (name: string, seedValues: unknown[], wire: WireSchema, extraDonors: Uint8Array[] = []): FuzzTarget {
  const seeds = seedValues.map((v) => copy(encodeCanonical(v)))
  const originals = hexSet(seeds)
  const schema = wire.schema ?? z.unknown()
  return {
    name,
    seeds,
    mutate: cborMutator(seeds, extraDonors),
    decode: (bytes) => decodeMessage(bytes, schema),
    codeOf: messageCode,
    isCatchAll: (err) => messageCode(err) === 'malformed/schema-threw',
    classify: (value) => {
      let again: Uint8Array
      try { again = encodeCanonical(value) } catch { return 'other' }
      return originals.has(toHex(again)) ? 'original' : 'other'
    },
    signed: false,
    note: `schema: ${wire.source}`
  }
}

/** A sync records message, then every record in it as applyBatch decodes them: records accepted must be seed records. */
function syncRecordsTarget (recordBytes: Uint8Array[], wire: WireSchema): FuzzTarget {
  const base = wireTarget('sync.records+records', [{ records: recordBytes }, { records: recordBytes.slice(0, 1) }], wire, recordBytes)
  const known = hexSet(recordBytes)
  return {
    ...base,
    decode: (bytes) => {
      const msg = decodeMessage(bytes, wire.schema ?? z.strictObject({ records: z.array(z.custom<Uint8Array>((v) => v instanceof Uint8Array)) }))
      const records = (msg as { records?: unknown }).records
      if (!Array.isArray(records)) return { accepted: [] }
      const accepted: Uint8Array[] = []
      for (const r of records) {
        try {
          accepted.push(decodeRecord(r as Uint8Array, COLLECTION_RECORD_TYPES).bytes)
        } catch (err) {
          if (!(err instanceof RecordError)) throw err
        }
      }
      return { accepted }
    },
    classify: (value) => ((value as { accepted: Uint8Array[] }).accepted.every((b) => known.has(toHex(b))) ? 'original' : 'other'),
    signed: true,
    note: `${base.note ?? ''}; every record through decodeRecord as sync's applyBatch does (a record refused inside is fine, one accepted must be a seed)`
  }
}

interface CarriedRecords { types: readonly AnyRecordType[], seeds: Uint8Array[] }

/**
 * A bid message, then each record in it decoded as the receiving side does (the provider: rfp as a
 * CCRFP, accept as a CCBA; the requester: ccb, decline, ccr): records accepted must be seed records.
 * Half the mutants change the message around its record; the other half put a mutant of a record of
 * the right type (CBOR mutations, re-encoded canonically now and then) into an intact message.
 */
function bidRecordsTarget (name: string, seedValues: Array<Record<string, unknown>>, wire: WireSchema, carried: Record<string, CarriedRecords>, recordBytes: Uint8Array[]): FuzzTarget {
  const base = wireTarget(name, seedValues, wire, recordBytes)
  const known = hexSet(recordBytes)
  const recordTypes = Object.fromEntries(Object.entries(carried).map(([k, c]) => [k, c.types]))
  const inner = Object.fromEntries(Object.entries(carried).map(([k, c]) => [k, { seeds: c.seeds, mutate: cborMutator(c.seeds, recordBytes) }]))
  return {
    ...base,
    mutate: (rng, i) => {
      const value = seedValues[i] as Record<string, unknown>
      const key = Object.keys(inner).find((k) => value[k] instanceof Uint8Array)
      if (key === undefined || rng.chance(0.5)) return base.mutate(rng, i)
      const { seeds, mutate } = inner[key] as { seeds: Uint8Array[], mutate: (rng: Rng, seed: number) => Mutant }
      const m = mutate(rng, rng.int(seeds.length))
      return { bytes: copy(encodeCanonical({ ...value, [key]: m.bytes })), ops: [...m.ops, `as ${key}`] }
    },
    decode: (bytes) => {
      const msg = decodeMessage(bytes, wire.schema ?? z.unknown()) as Record<string, unknown>
      const accepted: Uint8Array[] = []
      for (const [key, types] of Object.entries(recordTypes)) {
        const r = msg[key]
        if (!(r instanceof Uint8Array)) continue
        try {
          accepted.push(decodeRecord(r, types).bytes)
        } catch (err) {
          if (!(err instanceof RecordError)) throw err
        }
      }
      return { accepted }
    },
    classify: (value) => ((value as { accepted: Uint8Array[] }).accepted.every((b) => known.has(toHex(b))) ? 'original' : 'other'),
    signed: true,
    note: `${base.note ?? ''}; then ${Object.entries(recordTypes).map(([k, t]) => `${k} through decodeRecord([${t.map((x) => x.nsid.split('.').pop() ?? '').join(', ')}])`).join(', ')} (a record accepted must be a seed)`
  }
}

class Refusal extends Error {
  constructor (readonly code: string, message: string) { super(message) }
}

const attestationCode = (err: unknown): string | undefined => err instanceof AttestationError ? err.code : err instanceof Refusal ? err.code : undefined

function quoteFingerprint (q: TdxQuote): string {
  return [q.signedBytes, q.signature, q.attestationKey, q.qeReportBytes, q.qeReportSignature, q.qeAuthData].map(toHex).join('|') + `|${q.pckChainPem}|${q.paddingBytes}`
}

/** Collateral by meaning: hex case and PEM layout aside. */
function collateralFingerprint (c: Collateral): string {
  const der = (pem: string): string => [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64').toString('hex')).join(',')
  return JSON.stringify([der(c.pck_crl_issuer_chain), c.root_ca_crl.toLowerCase(), c.pck_crl.toLowerCase(), der(c.tcb_info_issuer_chain), c.tcb_info,
    c.tcb_info_signature.toLowerCase(), der(c.qe_identity_issuer_chain), c.qe_identity, c.qe_identity_signature.toLowerCase()])
}

export interface AttestationFixtures {
  pki: TestPki
  anchor: TrustAnchor
  atUnixSecs: number
  quotes: Uint8Array[]
  collateral: Collateral
  /** Real Intel quotes and collateral from ../shared/fixtures/tdx, when present (parse targets only). */
  realQuotes: Uint8Array[]
  realCollateral: string[]
}

export async function attestationFixtures (): Promise<AttestationFixtures> {
  const pki = await createTestPki({ seed: 'cmesh fuzz TEST-ONLY PKI', now: new Date('2026-01-01T00:00:00Z') })
  // Plain Uint8Array copies: the simulator returns Buffers, whose slice() is a view, not a copy.
  const quotes = [
    Uint8Array.from(await createQuote(pki, { reportData: sha256(utf8('binding')) })),
    Uint8Array.from(await createQuote(pki, { mrTd: sha256(utf8('mrtd')), rtmr: [sha256(utf8('rtmr0'))], mrConfigId: sha256(utf8('config')) }))
  ]
  const realQuotes: Uint8Array[] = []
  const realCollateral: string[] = []
  const dir = fileURLToPath(new URL('../../../shared/fixtures/tdx/', import.meta.url))
  if (existsSync(dir)) {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue
      const q = `${dir}${entry.name}/quote.bin`
      const c = `${dir}${entry.name}/collateral.json`
      if (existsSync(q)) realQuotes.push(Uint8Array.from(readFileSync(q)))
      if (existsSync(c)) realCollateral.push(readFileSync(c, 'utf8'))
    }
  }
  return { pki, anchor: trustAnchorFromDer(testRootDer(pki)), atUnixSecs: Math.floor(+pki.now / 1000), quotes, collateral: await createCollateral(pki), realQuotes, realCollateral }
}

function quoteTargets (fx: AttestationFixtures): FuzzTarget[] {
  const parseSeeds = [...fx.quotes, ...fx.realQuotes]
  const parts = parseSeeds.map(quoteParts)
  const parsedOriginals = new Set(parseSeeds.map((q) => quoteFingerprint(parseTdxQuote(q))))
  const mutate = (seeds: Uint8Array[]) => (rng: Rng, i: number): Mutant => mutateQuote(rng, seeds[i] as Uint8Array, parts[i] as ReturnType<typeof quoteParts>)
  const signedBodies = new Set(fx.quotes.map((q) => toHex(parseTdxQuote(q).signedBytes)))
  return [
    {
      name: 'quote.parse',
      seeds: parseSeeds,
      mutate: mutate(parseSeeds),
      decode: (bytes) => parseTdxQuote(bytes),
      codeOf: attestationCode,
      classify: (value) => parsedOriginals.has(quoteFingerprint(value as TdxQuote)) ? 'original' : 'other',
      signed: false,
      note: `${fx.quotes.length} simulator quotes${fx.realQuotes.length > 0 ? `, ${fx.realQuotes.length} real Intel quotes` : ' (no real Intel quotes in ../shared/fixtures/tdx)'}`
    },
    {
      name: 'quote.verify',
      seeds: fx.quotes,
      mutate: mutate(fx.quotes),
      decode: async (bytes) => {
        const r = await verifyTdxQuote(bytes, fx.collateral, { anchor: fx.anchor, atUnixSecs: fx.atUnixSecs, policy: tcbPolicy() })
        if (!r.accepted) throw new Refusal(r.code ?? 'NO_CODE', r.reason ?? '')
        return parseTdxQuote(bytes)
      },
      codeOf: attestationCode,
      isCatchAll: (err) => err instanceof Refusal && err.code === 'VERIFIER_FAILED',
      // The attested content is the signed header and body; the rest (chain layout, padding) may differ and still mean the same.
      classify: (value, bytes): Acceptance => {
        const q = value as TdxQuote
        if (!signedBodies.has(toHex(q.signedBytes))) return 'other'
        return fx.quotes.some((s) => bytesEqual(s, bytes)) ? 'original' : 'equivalent'
      },
      signed: true,
      expensive: true,
      note: 'verifyTdxQuote under the simulator root with its collateral; accepted = verdict accepted'
    }
  ]
}

function collateralTargets (fx: AttestationFixtures): FuzzTarget[] {
  const text = JSON.stringify(fx.collateral)
  const seeds = [utf8(text), ...fx.realCollateral.map(utf8)]
  const originals = new Set(seeds.map((s) => collateralFingerprint(parseCollateral(new TextDecoder().decode(s)))))
  const decodeText = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
  const tcbKey = fx.pki.keys.tcb.privateKey
  const signer = async (_field: string, signed: string): Promise<string> =>
    Buffer.from(await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, tcbKey, utf8(signed))).toString('hex')
  const classify = (value: unknown, bytes: Uint8Array): Acceptance => {
    if (!originals.has(collateralFingerprint(value as Collateral))) return 'other'
    return seeds.some((s) => bytesEqual(s, bytes)) ? 'original' : 'equivalent'
  }
  const verifySeed = fx.quotes[0] as Uint8Array
  return [
    {
      name: 'collateral.parse',
      seeds,
      mutate: async (rng, i) => await mutateCollateral(rng, seeds[i] as Uint8Array),
      decode: (bytes) => parseCollateral(decodeText(bytes)),
      codeOf: attestationCode,
      classify,
      signed: false,
      note: `simulator collateral${fx.realCollateral.length > 0 ? ` and ${fx.realCollateral.length} real ones` : ''}`
    },
    {
      name: 'collateral.verify',
      seeds: [utf8(text)],
      mutate: async (rng, i) => await mutateCollateral(rng, seeds[i] as Uint8Array, signer),
      decode: async (bytes) => {
        const c = parseCollateral(decodeText(bytes))
        const r = await verifyTdxQuote(verifySeed, c, { anchor: fx.anchor, atUnixSecs: fx.atUnixSecs, policy: tcbPolicy() })
        if (!r.accepted) throw new Refusal(r.code ?? 'NO_CODE', r.reason ?? '')
        return c
      },
      codeOf: attestationCode,
      isCatchAll: (err) => err instanceof Refusal && err.code === 'VERIFIER_FAILED',
      classify,
      signed: true,
      expensive: true,
      note: 'a simulator quote verified with the mutated collateral; TCB Info / QE Identity mutants are re-signed with the test TCB key now and then (resign)'
    }
  ]
}

/** Every target; `names` filters by exact name or prefix (`sync`, `quote.`, `card`). */
export async function buildTargets (names: string[] = []): Promise<FuzzTarget[]> {
  const rec = recordSeeds()
  const a = fuzzIdentity(1)
  const b = fuzzIdentity(2)
  const fx = await attestationFixtures()
  const quote = fx.quotes[0] as Uint8Array
  const collateralText = JSON.stringify(fx.collateral)
  const summary = new Uint8Array(SUMMARY_BUCKETS * 32)
  summary.set(sha256(utf8('bucket')), 32 * 7)
  const d32 = (s: string): Uint8Array => sha256(utf8(s))
  const allRecords = [...rec.card.bytes, ...rec.retirement.bytes]
  const con = contractSeeds(rec.ccrfp)
  const [rfpSeed, rfpSeed2] = rec.ccrfp.bytes as [Uint8Array, Uint8Array]
  const [ccbSeed, ccbSeed2] = con.ccb.bytes as [Uint8Array, Uint8Array]
  const [ccbaSeed] = con.ccba.bytes as [Uint8Array]
  const contractRecords = [...rec.ccrfp.bytes, ...con.ccb.bytes, ...con.decline.bytes, ...con.ccba.bytes, ...con.ccbap.bytes, ...con.ccr.bytes]
  const lifecycleRecords = [...con.heartbeat.bytes, ...con.termination.bytes]
  const reason = (code: string, detail: string): { code: string, detail: string } => ({ code, detail })
  const receipt = { enc: d32('receipt enc'), ct: new Uint8Array(600).fill(0x33) }
  const [ccbapSeed] = con.ccbap.bytes as [Uint8Array]
  const bidRequests: Array<Record<string, unknown>> = [{ rfp: rfpSeed }, { rfp: rfpSeed2 }, { accept: ccbaSeed }, { paid: { ccba: ccbaSeed, ccbap: ccbapSeed } }, { release: { ccb: decodeRecord(ccbSeed, [CcbType]).cid } }]
  const bidAnswers: Array<Record<string, unknown>> = [{ ccb: ccbSeed }, { ccb: ccbSeed2 }, ...con.decline.bytes.map((decline) => ({ decline })), { refused: reason('BID_NOT_BONDED', 'attest first: this connection has no bond at the provider\'s floor') }]
  const bidProvision: Array<Record<string, unknown>> = [
    { progress: { stage: 'provision:starting', at: T0 * 1000 + 250 } },
    ...con.ccr.bytes.map((ccr) => ({ ccr, receipt })),
    { failed: reason('USER_DATA_MISMATCH', 'the sealed user_data does not hash to the RFP\'s reference') },
    { payment: { url: 'http://127.0.0.1:8402/x402/ccr/at%3A%2F%2Fdid%3Akey%3Az6Mk%2Fcom.publicdomainrelay.temp.ccba%2F3k/bafy', deadlineUnixSecs: T0 + 160 } },
    { failed: reason('PAYMENT_NOT_ON_CHAIN', 'transaction 0xab… is not on chain 8453') },
    { refused: reason('BID_NOT_BONDED', '') }
  ]
  const targets: FuzzTarget[] = [
    recordTarget('card', rec.card, COLLECTION_RECORD_TYPES, 'decodeRecord(bytes, COLLECTION_RECORD_TYPES) as gossip and sync call it'),
    recordTarget('retirement', rec.retirement, COLLECTION_RECORD_TYPES, 'decodeRecord(bytes, COLLECTION_RECORD_TYPES)'),
    recordTarget('ccrfp', rec.ccrfp, [CcrfpType], 'decodeRecord(bytes, [CcrfpType]) as rfp gossip calls it'),
    recordTarget('ccb', con.ccb, [CcbType], 'decodeRecord(bytes, [CcbType]) as the requester calls it on a bid'),
    recordTarget('decline', con.decline, [DeclineType], 'decodeRecord(bytes, [DeclineType]) as the requester calls it on a decline'),
    recordTarget('ccba', con.ccba, [CcbaType], 'decodeRecord(bytes, [CcbaType]) as the provider calls it on an accept'),
    recordTarget('ccr', con.ccr, [CcrType], 'decodeRecord(bytes, [CcrType]) as the requester calls it on a receipt'),
    recordTarget('ccbap', con.ccbap, [CcbapType], 'decodeRecord(bytes, [CcbapType]) as the provider calls it on a paid accept'),
    recordTarget('vouch', con.vouch, TRUST_RECORD_TYPES, 'decodeRecord(bytes, TRUST_RECORD_TYPES) as the trust service reads its store'),
    recordTarget('denounce', con.denounce, TRUST_RECORD_TYPES, 'decodeRecord(bytes, TRUST_RECORD_TYPES) as the trust service reads its store'),
    recordTarget('heartbeat', con.heartbeat, [HeartbeatType], 'decodeRecord(bytes, [HeartbeatType]) as the requester calls it on a heartbeat'),
    recordTarget('termination', con.termination, [TerminationType], 'decodeRecord(bytes, [TerminationType]) as either side calls it on a termination'),
    wireTarget('sync.summary', [{ summary, count: 12 }], syncSchema('summary')),
    wireTarget('sync.buckets', [{ buckets: [0, 7, 255] }, { buckets: [] }], syncSchema('buckets')),
    wireTarget('sync.entries', [
      { entries: [{ p: a.did, t: T0, r: false, d: d32('a') }, { p: b.did, t: T0 + 1, r: true, d: d32('b') }], more: true },
      { entries: [], more: false }
    ], syncSchema('entries')),
    wireTarget('sync.want', [{ want: [a.did, b.did] }], syncSchema('want')),
    wireTarget('sync.records', [{ records: allRecords }, { records: [] }], syncSchema('records'), allRecords),
    syncRecordsTarget(allRecords, syncSchema('records')),
    wireTarget('sync.done', [{ done: true }], syncSchema('done')),
    wireTarget('attest.hello', [
      { v: 1, nonce: d32('nonce'), offer: 'TdxRaTlsBidirectional', require: 'TdxLocal', manifest: d32('manifest') },
      { v: 1, nonce: d32('nonce2'), offer: 'Software', require: 'Software', manifest: new Uint8Array(32) }
    ], attestSchema('hello')),
    wireTarget('attest.evidence', [
      { tdx: { quote, collateral: collateralText } },
      { software: { sig: new Uint8Array(64).fill(7) } },
      { refuse: 'ATTEST_LEVEL_TOO_LOW' }
    ], attestSchema('evidence')),
    wireTarget('attest.finish', [
      { transcript: d32('t'), ok: true },
      { transcript: d32('t'), ok: false, code: 'ATTEST_EVIDENCE_INVALID' }
    ], attestSchema('finish')),
    wireTarget('evidence.request', [{ cid: rawCidForBytes(quote) }], evidenceSchema('request')),
    wireTarget('evidence.response', [{ blob: quote.subarray(0, 1024) }, { missing: true }], evidenceSchema('response')),
    wireTarget('bid.request', bidRequests, bidSchema('request'), contractRecords),
    wireTarget('bid.answer', bidAnswers, bidSchema('answer'), contractRecords),
    wireTarget('bid.provision', bidProvision, bidSchema('provision'), contractRecords),
    wireTarget('bid.releaseAnswer', [{ ok: true }, { refused: reason('BID_NOT_BONDED', 'attest first') }], bidSchema('releaseAnswer')),
    bidRecordsTarget('bid.request+records', bidRequests, bidSchema('request'),
      { rfp: { types: [CcrfpType], seeds: rec.ccrfp.bytes }, accept: { types: [CcbaType], seeds: con.ccba.bytes } }, contractRecords),
    bidRecordsTarget('bid.answer+records', bidAnswers, bidSchema('answer'),
      { ccb: { types: [CcbType], seeds: con.ccb.bytes }, decline: { types: [DeclineType], seeds: con.decline.bytes } }, contractRecords),
    bidRecordsTarget('bid.provision+records', bidProvision, bidSchema('provision'), { ccr: { types: [CcrType], seeds: con.ccr.bytes } }, contractRecords),
    wireTarget('contract.request', [...con.heartbeat.bytes.map((heartbeat) => ({ heartbeat })), { terminated: con.termination.bytes[0] }, { terminate: con.termination.bytes[1] }], contractSchema('request'), lifecycleRecords),
    wireTarget('contract.ack', [{ ok: true }, { refused: reason('LIFECYCLE_SEQ_REPLAYED', 'heartbeat seq 3 is not above 7') }], contractSchema('ack')),
    wireTarget('contract.terminateAnswer', [{ terminated: con.termination.bytes[0] }, { refused: reason('LIFECYCLE_UNKNOWN_CONTRACT', 'no such contract with this peer') }], contractSchema('terminateAnswer'), lifecycleRecords),
    ...quoteTargets(fx),
    ...collateralTargets(fx)
  ]
  if (names.length === 0) return targets
  const chosen = targets.filter((t) => names.some((n) => t.name === n || t.name.startsWith(n)))
  if (chosen.length === 0) throw new Error(`no target matches ${names.join(', ')}; targets: ${targets.map((t) => t.name).join(', ')}`)
  return chosen
}
