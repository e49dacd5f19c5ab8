/**
 * Typed errors with a stable `code` (the Lodestar habit): callers branch on `code`, never on
 * message text, and protocol layers map codes to gossip verdicts and decline reasons.
 */
export class CmeshError<Code extends string = string, Meta extends object = Record<string, unknown>> extends Error {
  readonly code: Code
  readonly meta: Meta

  constructor (code: Code, message: string, meta?: Meta, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.meta = meta ?? ({} as Meta)
  }
}

/** Why an encoded record was refused. Stable: logs, gossip verdict reasons and CLI output use them. */
export type RecordErrorCode =
  | 'RECORD_TOO_LARGE'
  | 'RECORD_MALFORMED'
  | 'RECORD_NON_CANONICAL'
  | 'RECORD_UNKNOWN_TYPE'
  | 'RECORD_UNSUPPORTED_VERSION'
  | 'RECORD_SCHEMA'
  | 'RECORD_BAD_SIGNATURE'
  | 'RECORD_SEMANTIC'
  | 'RECORD_FROM_FUTURE'
  | 'RECORD_STALE'

export class RecordError extends CmeshError<RecordErrorCode> {}

export type IdentityErrorCode = 'IDENTITY_BAD_DID' | 'IDENTITY_BAD_KEY' | 'ADDRESS_MALFORMED' | 'TID_MALFORMED'

export class IdentityError extends CmeshError<IdentityErrorCode> {}

export type AuditErrorCode = 'AUDIT_BAD_ARGUMENT'

export class AuditError extends CmeshError<AuditErrorCode> {}
