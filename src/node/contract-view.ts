/**
 * One stored contract as the API and `cmesh contracts show` print it: where it stands, its last
 * heartbeat and its termination, decoded (signatures checked again: the store is not trusted more
 * than a peer). Records that no longer decode are left out rather than failing the whole view.
 */
import { CcbapType } from '../market/ccbap.js'
import { CcbType } from '../market/ccb.js'
import { decodeRecord } from '../market/record.js'
import { cidForBytes } from '../market/cbor.js'
import { HeartbeatType } from '../market/heartbeat.js'
import { TerminationType } from '../market/termination.js'
import type { StoredContract } from './contract-state.js'

function decoded<T> (read: () => T): T | undefined {
  try {
    return read()
  } catch {
    return undefined
  }
}

export function contractView (c: StoredContract): Record<string, unknown> {
  const hb = c.heartbeat !== undefined ? decoded(() => decodeRecord(c.heartbeat as Uint8Array, [HeartbeatType])) : undefined
  const t = c.termination !== undefined ? decoded(() => decodeRecord(c.termination as Uint8Array, [TerminationType])) : undefined
  return {
    id: c.id,
    role: c.role,
    state: c.state,
    // The provider's name for the contract: the CID of the first accept (a paid accept is re-signed naming its CCBAP; the provider keeps the first).
    ...(c.role === 'provider' ? { accept: c.id } : c.ccbap !== undefined ? { accept: decodeRecord(c.ccbap, [CcbapType]).value.cmesh.ccba.cid.toString() } : c.ccba !== undefined ? { accept: cidForBytes(c.ccba).toString() } : {}),
    // The accept as last signed (for a paid contract: the update naming its CCBAP, which the CCR names).
    ...(c.ccba !== undefined ? { ccba: cidForBytes(c.ccba).toString() } : {}),
    ...(c.ccb !== undefined ? { currency: decodeRecord(c.ccb, [CcbType]).value.bid.currency } : {}),
    ...(c.payment !== undefined ? { payment: c.payment } : {}),
    ...(c.periodPayments !== undefined ? { periodPayments: c.periodPayments.map(({ ccbap: _, ...p }) => p) } : {}),
    ...(c.counterparty !== undefined ? { counterparty: c.counterparty } : {}),
    ...(c.costWei !== undefined ? { costWei: c.costWei } : {}),
    ...(c.backend !== undefined ? { backend: c.backend } : {}),
    ...(c.validToUnixSecs !== undefined ? { validToUnixSecs: c.validToUnixSecs } : {}),
    ...(c.startedAtUnixSecs !== undefined ? { startedAtUnixSecs: c.startedAtUnixSecs } : {}),
    updatedAtUnixSecs: c.updatedAtUnixSecs,
    ...(c.error !== undefined ? { error: c.error } : {}),
    ...(hb !== undefined
      ? { heartbeat: { seq: hb.value.seq, atUnixSecs: hb.value.atUnixSecs, periodSecs: hb.value.periodSecs, usage: hb.value.usage, ...(c.lastHeartbeatUnixSecs !== undefined ? { recordedAtUnixSecs: c.lastHeartbeatUnixSecs } : {}) } }
      : {}),
    ...(t !== undefined
      ? { termination: { reason: t.value.reason, by: t.value.by, atUnixSecs: t.value.atUnixSecs, detail: t.value.detail, ...(t.value.usage !== undefined ? { usage: t.value.usage } : {}), uri: t.uri, cid: t.cid.toString() } }
      : {})
  }
}
