/** Record addresses `at://<did>/<nsid>/<rkey>` and strongRefs `{uri, cid}` as atproto spells them. */
import { IdentityError } from './errors.js'
import { isDid, type Did } from './identity.js'
import { isTid } from './tid.js'
import type { CID } from './cbor.js'

export interface AtUri {
  did: Did
  nsid: string
  rkey: string
}

export interface StrongRef {
  uri: string
  cid: CID
}

const NSID_PATTERN = /^[a-zA-Z]([a-zA-Z0-9-]{0,62})(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})){2,}$/

export function isNsid (value: string): boolean {
  return value.length <= 317 && NSID_PATTERN.test(value)
}

export function formatAtUri ({ did, nsid, rkey }: AtUri): string {
  return `at://${did}/${nsid}/${rkey}`
}

export function parseAtUri (uri: string): AtUri {
  const m = typeof uri === 'string' && uri.length <= 512 ? /^at:\/\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(uri) : null
  if (m === null) throw new IdentityError('ADDRESS_MALFORMED', 'not an at:// record address', { uri: String(uri).slice(0, 80) })
  const [, did, nsid, rkey] = m as unknown as [string, string, string, string]
  if (!isDid(did)) throw new IdentityError('ADDRESS_MALFORMED', 'at:// authority is not an Ed25519 did:key', { uri })
  if (!isNsid(nsid)) throw new IdentityError('ADDRESS_MALFORMED', 'at:// collection is not an NSID', { uri })
  if (!isTid(rkey)) throw new IdentityError('ADDRESS_MALFORMED', 'at:// rkey is not a TID', { uri })
  return { did, nsid, rkey }
}
