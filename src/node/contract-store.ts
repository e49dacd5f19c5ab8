/**
 * Read-modify-write of one stored contract for the lifecycle services. Other services write the
 * same records (the requester saves its flow, the provider its grant), so every change here is a
 * merge into the record as read just before, never a write of a copy held since; and changes to
 * one contract from this node's lifecycle code run one at a time (PerKeySerial).
 */
import type { PeerId } from '@libp2p/interface'
import { didFromPublicKey, type Did } from '../market/identity.js'
import { decodeRecord } from '../market/record.js'
import { CcbaType } from '../market/ccba.js'
import { CcbType } from '../market/ccb.js'
import { contractParties, type ContractParties } from '../market/lifecycle-checks.js'
import { nowSecs, type NodeComponents } from './components.js'
import { contractKey, decodeContract, encodeContract, type ContractRole, type StoredContract } from './contract-state.js'

/** The DID of a connection's (noise-authenticated) peer. */
export function didOfPeer (peer: PeerId): Did | undefined {
  const key = peer.publicKey?.raw
  return key === undefined ? undefined : didFromPublicKey(key)
}

/** Runs tasks one at a time per key, in arrival order; a failed task does not stop the next. */
export class PerKeySerial {
  private readonly tails = new Map<string, Promise<unknown>>()

  async run<T> (key: string, task: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).catch(() => {}).then(task)
    const tail = next.catch(() => {})
    this.tails.set(key, tail)
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key) })
    return await next
  }
}

export async function readContract (components: Pick<NodeComponents, 'store'>, role: ContractRole, id: string): Promise<StoredContract | undefined> {
  const held = await components.store.get('contracts', contractKey(role, id))
  return held === undefined ? undefined : decodeContract(held)
}

/**
 * Reads the contract afresh and stores `change(it)`, stamped now; `change` returns undefined to
 * leave it as it is. Returns what was stored (or undefined: no such contract, or no change).
 */
export async function updateContract (components: Pick<NodeComponents, 'store' | 'now'>, role: ContractRole, id: string, change: (c: StoredContract) => StoredContract | undefined): Promise<StoredContract | undefined> {
  const current = await readContract(components, role, id)
  if (current === undefined) return undefined
  const next = change(current)
  if (next === undefined) return undefined
  const stamped = { ...next, updatedAtUnixSecs: nowSecs(components) }
  await components.store.put('contracts', contractKey(role, id), encodeContract(stamped))
  return stamped
}

/** The parties of a stored contract, from its CCBA and CCB (undefined until both are stored). */
export function storedParties (c: StoredContract): ContractParties | undefined {
  if (c.ccba === undefined || c.ccb === undefined) return undefined
  return contractParties(decodeRecord(c.ccba, [CcbaType]), decodeRecord(c.ccb, [CcbType]))
}

/** The heartbeat period a bid names (`cmesh.heartbeatSecs`, when the bid carries one), read defensively. */
export function bidHeartbeatSecs (c: StoredContract): number | undefined {
  if (c.ccb === undefined) return undefined
  const v = (decodeRecord(c.ccb, [CcbType]).value.cmesh as { heartbeatSecs?: unknown }).heartbeatSecs
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 3600 ? v : undefined
}
