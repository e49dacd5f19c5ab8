/**
 * Workload identity federation (WIF) subjects. A bid's `wif.subject` is a template the provider's
 * issuer fills for each contract: `{ctx}` the contract id (the accept's CID), `{did}` the
 * requester's DID without its `did:` scheme (so `did:plc:abc` gives the compute-contract example's
 * `plc:abc`), `{role}` the RFP's role. Pure: the issuer and the downstream check use the same text.
 */
export const DEFAULT_WIF_SUBJECT = 'actx:{ctx}:{did}:role:{role}'
const PLACEHOLDER = /\{(ctx|did|role)\}/g

export interface WifSubjectParts {
  ctx: string
  did: string
  role: string
}

export function fillWifSubject (template: string, parts: WifSubjectParts): string {
  const did = parts.did.startsWith('did:') ? parts.did.slice(4) : parts.did
  return template.replace(PLACEHOLDER, (_, name: 'ctx' | 'did' | 'role') => name === 'did' ? did : parts[name])
}

/**
 * A subject rule: colon-separated segments, where a segment `*` matches any one non-empty segment
 * (`actx:*:key:z6Mk…:role:default` — any contract of this requester in this role). No other wildcard.
 */
export function subjectMatches (rule: string, subject: string): boolean {
  const want = rule.split(':')
  const got = subject.split(':')
  return want.length === got.length && want.every((seg, i) => seg === '*' ? (got[i] as string) !== '' : seg === got[i])
}

/** A requester's rule: which issuer + subject, with tokens for which audience, may do what (`cmesh trust wif`). */
export interface WifRule {
  /** The issuer exactly as tokens name it (`iss`), i.e. the bid's `wif.issuer_uri`. */
  issuer: string
  /** The subject; a `*` segment matches any one segment (subjectMatches). */
  subject: string
  audience: string
  /** Actions this rule allows (the downstream service names its own). */
  allow: string[]
}
