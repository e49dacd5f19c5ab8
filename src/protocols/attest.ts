/**
 * `/cmesh/<network>/attest/1.0.0`: both sides of a connection prove themselves to each other
 * before any bid byte flows (DESIGN.md §6).
 *
 *   I → R  hello    { nonce, offer, require, manifest }     R → I  hello
 *   I → R  evidence { tdx: {quote, collateral} | software: {sig} | refuse }     R → I  evidence
 *   I → R  finish   { transcript, ok, code? }                R → I  finish
 *
 * Each prover binds its evidence to REPORTDATA = SHA-512(domain ‖ prover id ‖ verifier id ‖
 * verifier nonce ‖ prover nonce ‖ ctx), ctx hashing the network and both hellos; each side takes
 * peer ids from its own noise-authenticated connection, never from the peer's bytes. What one side
 * requires of the other is its own policy; a peer offering less is refused (no downgrade). The
 * bond stands only when both verdicts are ok and both transcript hashes agree.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { randomBytes } from 'node:crypto'
import type { z } from 'zod'
import { bytesEqual } from '../market/bytes.js'
import { meets, type AttestationLevel } from '../market/ladder.js'
import { verify as verifyEd25519 } from '../market/ed25519.js'
import { CmeshError } from '../market/errors.js'
import type { Identity } from '../market/identity.js'
import { attestContext, attestReportData, softwareProofInput } from '../attestation/binding.js'
import { parseCollateral, MAX_COLLATERAL_BYTES } from '../attestation/collateral.js'
import { MAX_QUOTE_BYTES } from '../attestation/quote.js'
import { verifyTdxQuote, type TdxVerification } from '../attestation/tdx-verifier.js'
import { measurementManifestDigest } from '../attestation/card-evidence.js'
import { parseTdxQuote } from '../attestation/quote.js'
import type { QuoteProvider } from '../attestation/quote-provider.js'
import type { TrustAnchor } from '../attestation/trust-anchor.js'
import { tcbPolicy, type VerificationPolicy } from '../attestation/policy.js'
import { RateLimiter, type RateLimit } from './rate-limit.js'
import { errorText } from './error-text.js'
import { protocolId } from './names.js'
import { framed, readMessage, writeMessage, MessageError, type Registrar } from './messages.js'
import { ATTEST_MESSAGES, Transcript, type Hello } from './attest-messages.js'

export type AttestErrorCode =
  | 'ATTEST_LEVEL_TOO_LOW'
  | 'ATTEST_CANNOT_PROVE'
  | 'ATTEST_EVIDENCE_INVALID'
  | 'ATTEST_OVERSIZE'
  | 'ATTEST_TIMEOUT'
  | 'ATTEST_PROTOCOL'
  | 'ATTEST_TRANSCRIPT_MISMATCH'
  | 'ATTEST_PEER_REFUSED'
  | 'ATTEST_RATE_LIMITED'
  | 'ATTEST_ABORTED'

export class AttestError extends CmeshError<AttestErrorCode> {}

/** A quote (≤ 64 KiB) and its collateral (≤ 256 KiB), with room for the envelope. */
export const ATTEST_MAX_MESSAGE_BYTES = MAX_QUOTE_BYTES + MAX_COLLATERAL_BYTES + 4096
export const ATTEST_DEFAULT_TIMEOUT_MS = 10_000
/** Quote generation is costly on real hardware: per peer, a burst of 4 sessions, then one every 15 s. */
export const ATTEST_RATE: RateLimit = { ratePerSec: 1 / 15, burst: 4, rejectAfter: Number.MAX_SAFE_INTEGER }
/** All peers together: the per-peer limit alone lets 300 connections ask for hundreds of quotes at once. */
export const ATTEST_GLOBAL_RATE: RateLimit = { ratePerSec: 2, burst: 16, rejectAfter: Number.MAX_SAFE_INTEGER }
const TDX_LEVEL: AttestationLevel = 'TdxLocal'

export { ATTEST_MESSAGES, type Hello } from './attest-messages.js'

/** What an established bond says about the peer. */
export interface Bond {
  peer: string
  /** The level the peer proved in this exchange (at most TdxRaTlsBidirectional). */
  level: AttestationLevel
  /** Both sides presented and verified TDX quotes. */
  bidirectional: boolean
  /** The peer's quote verified only under a test root. */
  simulated: boolean
  /** The measurement manifest digest the peer declared; for TDX bonds its quote's measurements hash to it. */
  manifest: Uint8Array
  transcript: Uint8Array
  establishedAt: number
  tcb?: TdxVerification
}

export interface AttestInit {
  network: string
  identity: Identity
  /** Absent: this node can prove Software only. */
  quoteProvider?: QuoteProvider
  /** The root peers' quotes must chain to (Intel's in production). */
  anchor: TrustAnchor
  /** The level this node requires of every peer (local policy). */
  require: AttestationLevel
  /** This node's measurement manifest digest (its card's attestationDigest). */
  manifest: Uint8Array
  policy?: VerificationPolicy
  now?: () => number
  timeoutMs?: number
  rate?: RateLimit
  log?: (line: string) => void
  /** Called for every bond formed, initiator or responder side. */
  onBond?: (bond: Bond) => void
  /** Observes every exchange (metrics): outcome is `ok` or an error code. */
  onSession?: (session: AttestSession) => void
  /** Observes every quote this node verified for a peer (metrics): the verifier's code, or `OK`. */
  onQuoteVerified?: (code: string, seconds: number) => void
  /** Inbound sessions across all peers. */
  globalRate?: RateLimit
}

export interface AttestSession {
  role: 'initiator' | 'responder'
  peer: string
  outcome: 'ok' | AttestErrorCode
  level?: AttestationLevel
  seconds: number
  /** Why a failed exchange failed (one line). */
  error?: string
}

type Verdict = { ok: true, level: AttestationLevel, tcb?: TdxVerification } | { ok: false, code: AttestErrorCode, reason: string }

export class AttestProtocol {
  readonly protocol: string
  private readonly bonds = new Map<string, Bond>()
  private readonly limiter: RateLimiter
  private readonly globalLimiter: RateLimiter
  private readonly timeoutMs: number
  private readonly now: () => number
  private readonly onClose = (evt: CustomEvent<Connection>): void => { this.bonds.delete(evt.detail.id) }

  constructor (private readonly registrar: Registrar, private readonly init: AttestInit) {
    this.protocol = protocolId(init.network, 'attest')
    this.limiter = new RateLimiter(init.rate ?? ATTEST_RATE)
    this.globalLimiter = new RateLimiter(init.globalRate ?? ATTEST_GLOBAL_RATE)
    this.timeoutMs = init.timeoutMs ?? ATTEST_DEFAULT_TIMEOUT_MS
    this.now = init.now ?? Date.now
  }

  /** The most this node can prove: TDX (bidirectional when it also demands TDX of peers) or Software. */
  get offer (): AttestationLevel {
    if (this.init.quoteProvider === undefined) return 'Software'
    return meets(this.init.require, TDX_LEVEL) ? 'TdxRaTlsBidirectional' : 'TdxRemote'
  }

  async start (): Promise<void> {
    await this.registrar.handle(this.protocol, (stream, connection) => { void this.respond(stream, connection) }, { maxInboundStreams: 2, maxOutboundStreams: 2 })
    this.registrar.addEventListener('connection:close', this.onClose)
  }

  async stop (): Promise<void> {
    this.registrar.removeEventListener('connection:close', this.onClose)
    await this.registrar.unhandle(this.protocol)
    this.bonds.clear()
  }

  /** The bond on this connection, if the exchange completed. */
  bondFor (connection: Connection): Bond | undefined {
    return this.bonds.get(connection.id)
  }

  /** True when this connection bonded at `floor` or above: the gate the bid protocol checks. */
  isBonded (connection: Connection, floor: AttestationLevel = this.init.require): boolean {
    const bond = this.bonds.get(connection.id)
    return bond !== undefined && meets(bond.level, floor)
  }

  /**
   * Runs the exchange as initiator on `connection`. Throws AttestError when no bond results.
   * `require` raises what this exchange demands of the peer above the node's policy (an RFP's floor).
   */
  async attest (connection: Connection, options: { signal?: AbortSignal, require?: AttestationLevel } = {}): Promise<Bond> {
    return await this.observed('initiator', connection, performance.now(), (async () => {
      let stream: Stream
      try {
        stream = await connection.newStream(this.protocol, options.signal !== undefined ? { signal: options.signal } : {})
      } catch (err) {
        throw new AttestError('ATTEST_PROTOCOL', `cannot open an attest stream: ${(err as Error).message}`, {}, { cause: err })
      }
      const require = options.require !== undefined && meets(options.require, this.init.require) ? options.require : this.init.require
      return await this.run(stream, connection, true, options.signal, require)
    })())
  }

  private async respond (stream: Stream, connection: Connection): Promise<void> {
    const started = performance.now()
    // Quote generation costs the prover; a peer (or all peers together) asking too often is turned away before any work.
    const now = this.now()
    if (this.limiter.take(connection.remotePeer.toString(), now) !== 'ok' || this.globalLimiter.take('*', now) !== 'ok') {
      this.init.log?.(`attest: rate-limited ${connection.remotePeer.toString()}`)
      this.init.onSession?.({ role: 'responder', peer: connection.remotePeer.toString(), outcome: 'ATTEST_RATE_LIMITED', seconds: 0 })
      stream.abort(new AttestError('ATTEST_RATE_LIMITED', 'too many attest sessions'))
      return
    }
    try {
      await this.observed('responder', connection, started, this.run(stream, connection, false))
    } catch {
      // Reported through onSession.
    }
  }

  private async observed (role: AttestSession['role'], connection: Connection, started: number, session: Promise<Bond>): Promise<Bond> {
    const peer = connection.remotePeer.toString()
    try {
      const bond = await session
      this.init.onSession?.({ role, peer, outcome: 'ok', level: bond.level, seconds: (performance.now() - started) / 1000 })
      return bond
    } catch (err) {
      this.init.onSession?.({ role, peer, outcome: err instanceof AttestError ? err.code : 'ATTEST_PROTOCOL', seconds: (performance.now() - started) / 1000, error: errorText(err) })
      throw err
    }
  }

  /**
   * A peer's TDX evidence: its quote must verify to our anchor under our policy and carry the
   * binding we computed. Bidirectional when we proved TDX to it in the same exchange.
   */
  private async judgeTdx (evidence: { quote: Uint8Array, collateral: string }, reportData: Uint8Array, manifest: Uint8Array, weProvedTdx: boolean): Promise<Verdict> {
    let collateral
    try {
      collateral = parseCollateral(evidence.collateral)
    } catch (err) {
      return { ok: false, code: 'ATTEST_EVIDENCE_INVALID', reason: (err as Error).message }
    }
    const started = performance.now()
    const tcb = await verifyTdxQuote(evidence.quote, collateral, {
      anchor: this.init.anchor,
      atUnixSecs: Math.floor(this.now() / 1000),
      policy: { ...(this.init.policy ?? tcbPolicy()), reportData }
    })
    this.init.onQuoteVerified?.(tcb.code ?? 'OK', (performance.now() - started) / 1000)
    if (!tcb.accepted) return { ok: false, code: 'ATTEST_EVIDENCE_INVALID', reason: `${tcb.code ?? ''}: ${tcb.reason ?? ''}` }
    // The quote must be of the image the peer declared, or a bond would vouch for any TD at all.
    if (!bytesEqual(measurementManifestDigest(parseTdxQuote(evidence.quote).body), manifest)) {
      return { ok: false, code: 'ATTEST_EVIDENCE_INVALID', reason: 'quoted measurements do not match the declared manifest' }
    }
    return { ok: true, level: weProvedTdx ? 'TdxRaTlsBidirectional' : 'TdxRemote', tcb }
  }

  private async run (stream: Stream, connection: Connection, initiator: boolean, signal?: AbortSignal, require: AttestationLevel = this.init.require): Promise<Bond> {
    const timeout = AbortSignal.timeout(this.timeoutMs)
    const deadline = signal !== undefined ? AbortSignal.any([signal, timeout]) : timeout
    const lp = framed(stream, ATTEST_MAX_MESSAGE_BYTES)
    const transcript = new Transcript()
    const me = this.registrar.peerId.toMultihash().bytes
    const peer = connection.remotePeer
    const them = peer.toMultihash().bytes

    const send = async (value: unknown): Promise<Uint8Array> => await writeMessage(lp, value, deadline)
    const receive = async <S extends z.ZodType>(schema: S): Promise<{ value: z.output<S>, bytes: Uint8Array }> => {
      try {
        return await readMessage(lp, schema, deadline)
      } catch (err) {
        if (!(err instanceof MessageError)) throw err
        if (err.kind === 'timeout') throw new AttestError('ATTEST_TIMEOUT', `peer did not answer within ${this.timeoutMs} ms`)
        if (err.kind === 'oversize') throw new AttestError('ATTEST_OVERSIZE', `attest message larger than ${ATTEST_MAX_MESSAGE_BYTES} bytes`)
        throw new AttestError('ATTEST_PROTOCOL', `attest: ${err.message}`)
      }
    }
    // Both sides always see the other's hello before evidence, whatever the role.
    const exchange = async <S extends z.ZodType>(value: unknown, schema: S): Promise<{ mine: Uint8Array, theirs: { value: z.output<S>, bytes: Uint8Array } }> => {
      if (initiator) {
        const mine = await send(value)
        return { mine, theirs: await receive(schema) }
      }
      const theirs = await receive(schema)
      return { mine: await send(value), theirs }
    }

    try {
      const myHello: Hello = { v: 1, nonce: randomBytes(32), offer: this.offer, require: require, manifest: this.init.manifest }
      const hellos = await exchange(myHello, ATTEST_MESSAGES.hello)
      const theirHello = hellos.theirs.value
      const [helloI, helloR] = initiator ? [hellos.mine, hellos.theirs.bytes] : [hellos.theirs.bytes, hellos.mine]
      transcript.add(helloI)
      transcript.add(helloR)
      const ctx = attestContext(this.init.network, helloI, helloR)

      // Downgrade: a peer that does not even offer what we require is refused before evidence.
      const downgrade = !meets(theirHello.offer, require)
      // What the peer requires of us decides what we must prove.
      const mustProveTdx = meets(theirHello.require, TDX_LEVEL)
      const myReportData = attestReportData(me, them, theirHello.nonce, myHello.nonce, ctx)
      let myEvidence: unknown
      if (downgrade) myEvidence = { refuse: 'ATTEST_LEVEL_TOO_LOW' }
      else if (mustProveTdx && this.init.quoteProvider === undefined) myEvidence = { refuse: 'ATTEST_CANNOT_PROVE' }
      else if (mustProveTdx) {
        const provider = this.init.quoteProvider as QuoteProvider
        myEvidence = { tdx: { quote: await provider.quote(myReportData), collateral: JSON.stringify(await provider.collateral()) } }
      } else myEvidence = { software: { sig: this.init.identity.sign(softwareProofInput(myReportData)) } }

      const evidence = await exchange(myEvidence, ATTEST_MESSAGES.evidence)
      const [evI, evR] = initiator ? [evidence.mine, evidence.theirs.bytes] : [evidence.theirs.bytes, evidence.mine]
      transcript.add(evI)
      transcript.add(evR)

      // Judge the peer's evidence against the binding we compute ourselves.
      const theirReportData = attestReportData(them, me, myHello.nonce, theirHello.nonce, ctx)
      let verdict: Verdict
      const theirs = evidence.theirs.value
      if (downgrade) verdict = { ok: false, code: 'ATTEST_LEVEL_TOO_LOW', reason: `peer offers ${theirHello.offer}, we require ${require}` }
      else if ('refuse' in theirs) verdict = { ok: false, code: 'ATTEST_PEER_REFUSED', reason: `peer refused: ${theirs.refuse}` }
      else if ('software' in theirs) {
        const key = peer.publicKey?.raw
        verdict = key !== undefined && verifyEd25519(key, softwareProofInput(theirReportData), theirs.software.sig)
          ? { ok: true, level: 'Software' }
          : { ok: false, code: 'ATTEST_EVIDENCE_INVALID', reason: 'software proof does not verify for the peer key' }
      } else verdict = await this.judgeTdx(theirs.tdx, theirReportData, theirHello.manifest, 'tdx' in (myEvidence as object))
      if (verdict.ok && !meets(verdict.level, require)) {
        verdict = { ok: false, code: 'ATTEST_LEVEL_TOO_LOW', reason: `peer proved ${verdict.level}, we require ${require}` }
      }

      const digest = transcript.digest()
      const finishes = await exchange({ transcript: digest, ok: verdict.ok, ...(verdict.ok ? {} : { code: verdict.code }) }, ATTEST_MESSAGES.finish)
      const theirFinish = finishes.theirs.value
      await stream.close({ signal: deadline }).catch(() => {})
      if (!verdict.ok) throw new AttestError(verdict.code, verdict.reason)
      if (!bytesEqual(theirFinish.transcript, digest)) throw new AttestError('ATTEST_TRANSCRIPT_MISMATCH', 'the peer saw a different exchange')
      if (!theirFinish.ok) throw new AttestError('ATTEST_PEER_REFUSED', `peer refused our evidence: ${theirFinish.code ?? 'no reason'}`)
      const bond: Bond = {
        peer: peer.toString(),
        level: verdict.level,
        bidirectional: verdict.level === 'TdxRaTlsBidirectional',
        simulated: verdict.tcb?.simulated ?? false,
        manifest: theirHello.manifest,
        transcript: digest,
        establishedAt: this.now(),
        ...(verdict.tcb !== undefined ? { tcb: verdict.tcb } : {})
      }
      // A connection that closed meanwhile must not leave a bond behind under its id.
      if (connection.status === 'open') {
        this.bonds.set(connection.id, bond)
        this.init.onBond?.(bond)
      }
      return bond
    } catch (err) {
      stream.abort(err as Error)
      if (err instanceof AttestError) throw err
      if (timeout.aborted) throw new AttestError('ATTEST_TIMEOUT', `attest exchange did not finish within ${this.timeoutMs} ms`)
      if (deadline.aborted) throw new AttestError('ATTEST_ABORTED', 'attest exchange aborted')
      throw new AttestError('ATTEST_PROTOCOL', (err as Error).message)
    }
  }
}
