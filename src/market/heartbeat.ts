/**
 * Heartbeat: a provider's signed "this contract's machine still runs", sent to the requester every
 * period while the contract is live (our namespace; the compute-contract lexicons have none).
 * `seq` starts at 1 and only grows, so a replayed or reordered heartbeat is told apart from news;
 * `periodSecs` tells the requester when to expect the next one.
 */
import type { Did } from './identity.js'
import type { StrongRef } from './address.js'
import type { RecordType, SignedRecord } from './record.js'
import { did, uint, unixSecs, z } from './schema.js'
import { CCBA_NSID } from './ccba.js'
import { strongRef, strongRefToWire } from './strong-ref.js'
import { usageSchema, usageToWire, type Usage } from './usage.js'

export const HEARTBEAT_NSID = 'org.computemesh.contract.heartbeat'
export const MAX_HEARTBEAT_BYTES = 1024
/** Heartbeat periods a provider may announce (config `lifecycle.heartbeatSecs` has the same range). */
export const MIN_HEARTBEAT_SECS = 1
export const MAX_HEARTBEAT_SECS = 3600

export interface Heartbeat {
  /** The contract: its CCBA. */
  contract: StrongRef
  provider: Did
  /** 1 for the first heartbeat of a contract, then strictly increasing. */
  seq: number
  atUnixSecs: number
  /** Seconds until the next heartbeat is due. */
  periodSecs: number
  usage: Usage
}

const heartbeatSchema = z.strictObject({
  contract: strongRef(CCBA_NSID),
  provider: did,
  seq: uint.min(1),
  atUnixSecs: unixSecs,
  periodSecs: uint.min(MIN_HEARTBEAT_SECS).max(MAX_HEARTBEAT_SECS),
  usage: usageSchema
}) satisfies z.ZodType<Heartbeat, any>

export const HeartbeatType: RecordType<Heartbeat> = {
  nsid: HEARTBEAT_NSID,
  maxBytes: MAX_HEARTBEAT_BYTES,
  schema: heartbeatSchema,
  toFields: (h) => ({
    contract: strongRefToWire(h.contract),
    provider: h.provider,
    seq: h.seq,
    atUnixSecs: h.atUnixSecs,
    periodSecs: h.periodSecs,
    usage: usageToWire(h.usage)
  }),
  author: (h) => h.provider,
  time: (h) => h.atUnixSecs
}

export type SignedHeartbeat = SignedRecord<Heartbeat>
