/**
 * Which auditors say on the DHT that they hold a provider's verified evidence. Every node serves
 * the evidence it verified, but if every node also announced it, a network of N nodes would make
 * N × N × 2 DHT provides as it forms (each a closest-peers query and up to 20 ADD_PROVIDERs): at
 * N = 100 on one host that kept the mesh from converging. Instead each node announces a given
 * evidence CID only when a hash of (its peer id, the CID) falls in the lowest
 * `EVIDENCE_ANNOUNCERS / networkSize` of the range: a stable choice nobody coordinates, with
 * about EVIDENCE_ANNOUNCERS announcers per CID whatever the network's size (the provider itself
 * always announces its own).
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '../market/bytes.js'

/** Announcers per evidence CID, expected, network-wide (besides the provider). */
export const EVIDENCE_ANNOUNCERS = 8

/**
 * `networkSize` is what this node can count of the network: the providers in its collection (a
 * lower bound on the nodes, so the expected number of announcers only errs upward).
 */
export function announcesEvidence (peerIdBytes: Uint8Array, cidBytes: Uint8Array, networkSize: number): boolean {
  if (networkSize <= EVIDENCE_ANNOUNCERS) return true
  const h = sha256(concatBytes(peerIdBytes, cidBytes))
  const draw = (((h[0] as number) << 24) >>> 0) + ((h[1] as number) << 16) + ((h[2] as number) << 8) + (h[3] as number)
  return draw / 2 ** 32 < EVIDENCE_ANNOUNCERS / networkSize
}
