/**
 * What a downstream service checks on a workload token: signed by a key in its issuer's JWKS
 * (found through the issuer's OIDC discovery document), ES256, not expired, and a rule that names
 * this issuer, this subject and this audience and allows the action. Every refusal is a WifError
 * with a stable code.
 */
import { createRemoteJWKSet, decodeJwt, jwtVerify, errors as joseErrors, type JWTVerifyGetKey } from 'jose'
import { CmeshError } from '../market/errors.js'
import { subjectMatches, type WifRule } from '../market/wif-subject.js'

export type WifErrorCode = 'WIF_TOKEN_MALFORMED' | 'WIF_ISSUER_UNTRUSTED' | 'WIF_ISSUER_UNREACHABLE' | 'WIF_SIGNATURE_INVALID' | 'WIF_TOKEN_EXPIRED' | 'WIF_AUDIENCE_MISMATCH' | 'WIF_SUBJECT_REFUSED'
export class WifError extends CmeshError<WifErrorCode> {}

export interface VerifiedWorkload { issuer: string, subject: string, audience: string, grant?: string }

/** Keys per issuer, from its discovery document; jose caches and refetches on an unknown kid. */
export class IssuerKeys {
  private readonly sets = new Map<string, Promise<JWTVerifyGetKey>>()

  async for (issuer: string): Promise<JWTVerifyGetKey> {
    let set = this.sets.get(issuer)
    if (set === undefined) {
      set = (async () => {
        const res = await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(10_000) })
        if (!res.ok) throw new Error(`discovery answered ${res.status}`)
        const doc = await res.json() as { issuer?: string, jwks_uri?: string }
        if (doc.issuer !== issuer || typeof doc.jwks_uri !== 'string') throw new Error('discovery document names another issuer or no jwks_uri')
        return createRemoteJWKSet(new URL(doc.jwks_uri), { timeoutDuration: 10_000, cooldownDuration: 1_000 })
      })()
      this.sets.set(issuer, set)
      set.catch(() => { this.sets.delete(issuer) })
    }
    try {
      return await set
    } catch (err) {
      throw new WifError('WIF_ISSUER_UNREACHABLE', `issuer ${issuer}: ${(err as Error).message}`)
    }
  }
}

export async function verifyWorkloadToken (token: string, options: { rules: WifRule[], action: string, keys: IssuerKeys, audience: string, nowSecs?: number }): Promise<VerifiedWorkload> {
  let claims
  try {
    claims = decodeJwt(token)
  } catch {
    throw new WifError('WIF_TOKEN_MALFORMED', 'not a JWT')
  }
  const issuer = claims.iss
  const rules = options.rules.filter((r) => r.issuer === issuer)
  if (issuer === undefined || rules.length === 0) throw new WifError('WIF_ISSUER_UNTRUSTED', `no rule trusts issuer ${issuer ?? '(none)'}`)
  let verified
  try {
    verified = await jwtVerify(token, await options.keys.for(issuer), { issuer, audience: options.audience, algorithms: ['ES256'], ...(options.nowSecs !== undefined ? { currentDate: new Date(options.nowSecs * 1000) } : {}) })
  } catch (err) {
    if (err instanceof WifError) throw err
    if (err instanceof joseErrors.JWTExpired) throw new WifError('WIF_TOKEN_EXPIRED', 'the token has expired')
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') throw new WifError('WIF_AUDIENCE_MISMATCH', `the token is for another audience, not ${options.audience}`)
    if (err instanceof joseErrors.JWTClaimValidationFailed) throw new WifError('WIF_TOKEN_MALFORMED', `claim ${err.claim}: ${err.message}`)
    throw new WifError('WIF_SIGNATURE_INVALID', `signature not by the issuer's keys: ${(err as Error).message}`)
  }
  const subject = verified.payload.sub ?? ''
  const allowed = rules.some((r) => r.audience === options.audience && subjectMatches(r.subject, subject) && r.allow.includes(options.action))
  if (!allowed) throw new WifError('WIF_SUBJECT_REFUSED', `no rule lets ${subject} from ${issuer} ${options.action}`)
  return { issuer, subject, audience: options.audience, ...(typeof verified.payload.grant === 'string' ? { grant: verified.payload.grant } : {}) }
}
