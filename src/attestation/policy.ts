/**
 * What this node accepts in a quote, beyond cryptographic validity: which TCB statuses (default:
 * UpToDate only; SWHardeningNeeded by explicit opt-in), and which measurements (MRTD, RTMRs,
 * MRCONFIGID) when a card or an RFP pins them.
 */
export const TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded'
] as const

export type TcbStatus = typeof TCB_STATUSES[number]

export interface ExpectedMeasurements {
  mrTd?: Uint8Array
  /** Per index; undefined entries are not checked. */
  rtmr?: Array<Uint8Array | undefined>
  mrConfigId?: Uint8Array
}

export interface VerificationPolicy {
  acceptedTcbStatuses: readonly TcbStatus[]
  expected?: ExpectedMeasurements
  /** The exact REPORTDATA the quote must carry (the attest protocol's binding). */
  reportData?: Uint8Array
}

export function tcbPolicy ({ allowSwHardeningNeeded = false } = {}): VerificationPolicy {
  return { acceptedTcbStatuses: allowSwHardeningNeeded ? ['UpToDate', 'SWHardeningNeeded'] : ['UpToDate'] }
}

/** Intel's order of severity, used when the TDX module's status downgrades the platform's. */
export function worseStatus (a: TcbStatus, b: TcbStatus): TcbStatus {
  if ((a === 'OutOfDate' && b.startsWith('Configuration')) || (b === 'OutOfDate' && a.startsWith('Configuration'))) return 'OutOfDateConfigurationNeeded'
  return TCB_STATUSES.indexOf(a) >= TCB_STATUSES.indexOf(b) ? a : b
}
