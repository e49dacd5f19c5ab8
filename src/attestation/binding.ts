/**
 * What a quote in the attest protocol must carry in REPORTDATA (DESIGN.md §6):
 *   SHA-512("cmesh/attest/v1\0" ‖ lp(peerId_prover) ‖ lp(peerId_verifier) ‖ lp(nonce_verifier) ‖ lp(nonce_prover) ‖ lp(ctx))
 * Peer ids are the multihash bytes each side reads from its own noise-authenticated connection.
 * The verifier's id defeats relay (cuckoo), the prover-first order defeats reflection, the fresh
 * verifier nonce defeats replay, ctx (network, both hellos: levels and manifests) defeats downgrade.
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js'
import { concatBytes, lengthPrefixed, utf8 } from '../market/bytes.js'

const REPORT_DATA_DOMAIN = utf8('cmesh/attest/v1\0')
const CONTEXT_DOMAIN = utf8('cmesh/attest/ctx/v1\0')
const SOFTWARE_PROOF_DOMAIN = utf8('cmesh/attest/software/v1\0')

export function attestContext (network: string, initiatorHello: Uint8Array, responderHello: Uint8Array): Uint8Array {
  return sha256(concatBytes(CONTEXT_DOMAIN, lengthPrefixed(utf8(network)), lengthPrefixed(initiatorHello), lengthPrefixed(responderHello)))
}

export function attestReportData (prover: Uint8Array, verifier: Uint8Array, verifierNonce: Uint8Array, proverNonce: Uint8Array, ctx: Uint8Array): Uint8Array {
  return sha512(concatBytes(REPORT_DATA_DOMAIN, lengthPrefixed(prover), lengthPrefixed(verifier), lengthPrefixed(verifierNonce), lengthPrefixed(proverNonce), lengthPrefixed(ctx)))
}

/** What a Software-level prover signs with its node key instead of producing a quote. */
export function softwareProofInput (reportData: Uint8Array): Uint8Array {
  return concatBytes(SOFTWARE_PROOF_DOMAIN, reportData)
}
