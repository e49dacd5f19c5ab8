/**
 * The provider's workload identity issuer: an OIDC issuer at `<public url>/wif` (discovery
 * document, JWKS) that exchanges a grant's workload credential — placed on the machine at the
 * bid's `wif.token_path` — for a short-lived ES256 JWT whose `sub` is the bid's subject template
 * filled for the contract and whose `aud` is the requester's audience from the accept. Downstream
 * services check it against this JWKS and their own rules.
 *
 * Keys are in memory and rotate every `wif.rotateSecs`; the previous key stays published until
 * every token it signed has expired. A restart makes new keys (tokens last minutes; credentials
 * of grants that outlive the restart are re-minted from the store). A credential works only while
 * its contract is ready and before its valid-to.
 */
import type { Startable } from '@libp2p/interface'
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { SignJWT, exportJWK, generateKeyPair, calculateJwkThumbprint, type CryptoKey, type JWK } from 'jose'
import { fillWifSubject, DEFAULT_WIF_SUBJECT } from '../../market/wif-subject.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import { contractKey, decodeContract } from '../contract-state.js'
import { HttpRefusal, type PublicHttp } from './public-http.js'

export const WIF_BASE_PATH = '/wif'
export const WIF_TOKEN_ROUTE = '/wif/token'
export const WIF_TOKEN_PATH = '.cmesh/wif-credential'
export const WIF_URL_PATH = '.cmesh/wif-url'
const MAX_CREDENTIALS = 10_000

interface SigningKey { kid: string, privateKey: CryptoKey, publicJwk: JWK, retiredAtUnixSecs?: number }
interface Credential { grantId: string, subject: string, audience: string, validToUnixSecs: number }

export class WifIssuer implements Startable {
  private keys: SigningKey[] = []
  private readonly credentials = new Map<string, Credential>()
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly components: NodeComponents, private readonly init: { publicHttp: PublicHttp }) {
    if (!this.enabled) return
    init.publicHttp.add(
      { method: 'GET', path: `${WIF_BASE_PATH}/.well-known/openid-configuration`, handle: () => ({ status: 200, json: this.discovery() }) },
      { method: 'GET', path: `${WIF_BASE_PATH}/jwks`, handle: () => ({ status: 200, json: { keys: this.keys.map((k) => k.publicJwk) } }) },
      { method: 'POST', path: WIF_TOKEN_ROUTE, handle: async (req) => await this.exchange(req.headers.authorization) }
    )
  }

  get enabled (): boolean {
    const { config } = this.components
    return config.roles.includes('provider') && config.wif.enabled
  }

  /** The issuer (`iss`), as bids name it in `wif.issuer_uri`. */
  get issuer (): string {
    return `${this.init.publicHttp.url}${WIF_BASE_PATH}`
  }

  /** What a bid says about workload identity. */
  bidTerms (): { issuer_uri: string, to_issue: string, token_path: string, url_path: string, url_route: string, subject: string } | undefined {
    if (!this.enabled) return undefined
    return { issuer_uri: this.issuer, to_issue: 'jwt', token_path: WIF_TOKEN_PATH, url_path: WIF_URL_PATH, url_route: WIF_TOKEN_ROUTE, subject: DEFAULT_WIF_SUBJECT }
  }

  async start (): Promise<void> {
    if (!this.enabled) return
    await this.rotate()
    this.timer = every(this.components.config.wif.rotateSecs, () => { this.rotate().catch((err) => this.components.log.warn(`wif key rotation failed: ${(err as Error).message}`)) })
  }

  stop (): void {
    clearInterval(this.timer)
    this.credentials.clear()
  }

  /** A new signing key; keys retired longer ago than a token lives are dropped from the JWKS. */
  async rotate (): Promise<void> {
    const now = nowSecs(this.components)
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
    const publicJwk = await exportJWK(publicKey)
    const kid = await calculateJwkThumbprint(publicJwk)
    const current = this.keys[0]
    if (current !== undefined) current.retiredAtUnixSecs = now
    this.keys = [{ kid, privateKey: privateKey as CryptoKey, publicJwk: { ...publicJwk, kid, alg: 'ES256', use: 'sig' } }, ...this.keys]
      .filter((k) => k.retiredAtUnixSecs === undefined || now - k.retiredAtUnixSecs <= this.components.config.wif.tokenTtlSecs)
  }

  /**
   * The files a grant's machine gets: the workload credential (secret, 0600) and the token URL.
   * The credential is random; only its hash is kept here.
   */
  grantFiles (grant: { id: string, requester: string, role: string, audience: string, validToUnixSecs: number, subjectTemplate?: string }): Array<{ path: string, content: Uint8Array, mode: number }> {
    const credential = randomBytes(32).toString('base64url')
    const subject = fillWifSubject(grant.subjectTemplate ?? DEFAULT_WIF_SUBJECT, { ctx: grant.id, did: grant.requester, role: grant.role })
    this.credentials.set(digest(credential), { grantId: grant.id, subject, audience: grant.audience, validToUnixSecs: grant.validToUnixSecs })
    for (const key of this.credentials.keys()) if (this.credentials.size > MAX_CREDENTIALS) this.credentials.delete(key)
    const enc = new TextEncoder()
    return [
      { path: WIF_TOKEN_PATH, content: enc.encode(credential + '\n'), mode: 0o600 },
      { path: WIF_URL_PATH, content: enc.encode(`${this.init.publicHttp.url}${WIF_TOKEN_ROUTE}\n`), mode: 0o644 }
    ]
  }

  private discovery (): Record<string, unknown> {
    return {
      issuer: this.issuer,
      jwks_uri: `${this.issuer}/jwks`,
      token_endpoint: `${this.init.publicHttp.url}${WIF_TOKEN_ROUTE}`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
      grant_types_supported: ['urn:ietf:params:oauth:grant-type:token-exchange'],
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'grant']
    }
  }

  private async exchange (authorization: string | undefined): Promise<{ status: number, json: unknown }> {
    const { metrics, config, store } = this.components
    const refuse = (code: string, message: string): never => {
      metrics.wifTokens.inc({ outcome: code })
      throw new HttpRefusal(code, message, { status: 401, headers: { 'www-authenticate': 'Bearer' } })
    }
    const match = /^Bearer ([A-Za-z0-9_-]{43})$/.exec(authorization ?? '')
    if (match === null) return refuse('WIF_CREDENTIAL_MISSING', 'send the workload credential as `Authorization: Bearer <credential>`')
    const wanted = digest(match[1] as string)
    let found: Credential | undefined
    for (const [hash, credential] of this.credentials) if (timingSafeEqual(Buffer.from(hash, 'hex'), Buffer.from(wanted, 'hex'))) found = credential
    if (found === undefined) return refuse('WIF_CREDENTIAL_UNKNOWN', 'unknown workload credential')
    const now = nowSecs(this.components)
    if (now >= found.validToUnixSecs) return refuse('WIF_CONTRACT_ENDED', 'the contract this credential belongs to has ended')
    const held = await store.get('contracts', contractKey('provider', found.grantId))
    const state = held === undefined ? undefined : decodeContract(held).state
    if (state !== 'ready' && state !== 'provisioning') return refuse('WIF_CONTRACT_ENDED', `the contract this credential belongs to is ${state ?? 'unknown'}`)
    const key = this.keys[0]
    if (key === undefined) return refuse('WIF_UNAVAILABLE', 'the issuer has no signing key')
    const ttl = Math.min(config.wif.tokenTtlSecs, found.validToUnixSecs - now)
    const token = await new SignJWT({ grant: found.grantId })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(found.subject)
      .setAudience(found.audience)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + ttl)
      .setJti(randomBytes(16).toString('hex'))
      .sign(key.privateKey)
    metrics.wifTokens.inc({ outcome: 'issued' })
    return { status: 200, json: { access_token: token, token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:jwt', expires_in: ttl } }
  }
}

function digest (credential: string): string {
  return createHash('sha256').update(credential).digest('hex')
}
