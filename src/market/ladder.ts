/**
 * The attestation ladder, lowest first. Order matters: `meets(level, floor)` is `rank >= rank`.
 * Software = signed card only; TdxLocal = quote matches declared measurements; TdxRemote = full
 * DCAP chain to Intel's root; TdxRaTlsBidirectional = plus the bidirectional attest protocol;
 * TdxPlusReproducibleBuild = plus a build recipe that reproduces the quoted measurements.
 */
export const ATTESTATION_LEVELS = [
  'Software',
  'TdxLocal',
  'TdxRemote',
  'TdxRaTlsBidirectional',
  'TdxPlusReproducibleBuild'
] as const

export type AttestationLevel = typeof ATTESTATION_LEVELS[number]

export function isAttestationLevel (value: unknown): value is AttestationLevel {
  return typeof value === 'string' && (ATTESTATION_LEVELS as readonly string[]).includes(value)
}

export function levelRank (level: AttestationLevel): number {
  return ATTESTATION_LEVELS.indexOf(level)
}

export function meets (level: AttestationLevel, floor: AttestationLevel): boolean {
  return levelRank(level) >= levelRank(floor)
}

/** The lower of two levels: what a claim is worth when evidence proves less. */
export function minLevel (a: AttestationLevel, b: AttestationLevel): AttestationLevel {
  return levelRank(a) <= levelRank(b) ? a : b
}
