/**
 * What a validation error means for gossip (the Lodestar `GossipActionError` habit): REJECT
 * penalises the forwarding peer (it relayed something provably bad), IGNORE drops without penalty
 * (stale, duplicate, over a rate limit the first time, or not our fault to judge).
 */
import { RecordError, type RecordErrorCode } from '../market/errors.js'

export type GossipVerdict = 'accept' | 'ignore' | 'reject'

const RECORD_VERDICTS: Record<RecordErrorCode, GossipVerdict> = {
  RECORD_TOO_LARGE: 'reject',
  RECORD_MALFORMED: 'reject',
  RECORD_NON_CANONICAL: 'reject',
  RECORD_UNKNOWN_TYPE: 'reject',
  // A newer version may be legitimate on a mixed network: drop it, don't punish the relay.
  RECORD_UNSUPPORTED_VERSION: 'ignore',
  RECORD_SCHEMA: 'reject',
  RECORD_BAD_SIGNATURE: 'reject',
  RECORD_SEMANTIC: 'reject',
  // Clocks drift; an honest relay can forward a record that is slightly early or late for us.
  RECORD_FROM_FUTURE: 'ignore',
  RECORD_STALE: 'ignore'
}

export function verdictForError (err: unknown): GossipVerdict {
  if (err instanceof RecordError) return RECORD_VERDICTS[err.code]
  // Anything unexpected is our bug, not the peer's fault.
  return 'ignore'
}
