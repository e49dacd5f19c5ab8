/**
 * The message schemas the stream protocols check on arrival. They are module-private today; the
 * fuzzer looks for them under the names below and, while a protocol does not export them, fuzzes
 * that protocol's messages through decodeCanonical alone (every CBOR refusal, no schema step):
 *
 *   src/protocols/sync.ts      export const SYNC_MESSAGES = { summary: summaryMsg, buckets: bucketsMsg,
 *                                entries: entriesMsg, want: wantMsg, records: recordsMsg, done: doneMsg, request: requestMsg }
 *   src/protocols/attest.ts    export const ATTEST_MESSAGES = { hello: helloMsg, evidence: evidenceMsg, finish: finishMsg }
 *   src/protocols/evidence.ts  export const EVIDENCE_MESSAGES = { request: requestMsg, response: responseMsg }
 *   src/protocols/bid.ts       export const BID_MESSAGES = { request: requestMsg, answer: answerMsg,
 *                                provision: provisionMsg, releaseAnswer: releaseAnswerMsg }
 *   src/protocols/contract.ts  export const CONTRACT_MESSAGES = { request: requestMsg, ack: ackMsg, terminateAnswer: terminateAnswerMsg }
 */
import type { z } from 'zod'
import * as sync from '../../src/protocols/sync.js'
import * as attest from '../../src/protocols/attest.js'
import * as evidence from '../../src/protocols/evidence.js'
import * as bid from '../../src/protocols/bid.js'
import * as contract from '../../src/protocols/contract.js'

export interface WireSchema {
  schema?: z.ZodType
  /** Where the schema comes from, or why there is none. */
  source: string
}

function lookup (module: unknown, file: string, exportName: string, message: string): WireSchema {
  const table = (module as Record<string, unknown>)[exportName] as Record<string, unknown> | undefined
  const schema = table?.[message] as z.ZodType | undefined
  if (schema !== undefined && typeof schema.safeParse === 'function') return { schema, source: `${file} ${exportName}.${message}` }
  return { source: `decodeCanonical only (${file} does not export ${exportName})` }
}

export function syncSchema (message: 'summary' | 'buckets' | 'entries' | 'want' | 'records' | 'done' | 'request'): WireSchema {
  return lookup(sync, 'sync.ts', 'SYNC_MESSAGES', message)
}

export function attestSchema (message: 'hello' | 'evidence' | 'finish'): WireSchema {
  return lookup(attest, 'attest.ts', 'ATTEST_MESSAGES', message)
}

export function evidenceSchema (message: 'request' | 'response'): WireSchema {
  return lookup(evidence, 'evidence.ts', 'EVIDENCE_MESSAGES', message)
}

export function bidSchema (message: 'request' | 'answer' | 'provision' | 'releaseAnswer'): WireSchema {
  return lookup(bid, 'bid.ts', 'BID_MESSAGES', message)
}

export function contractSchema (message: 'request' | 'ack' | 'terminateAnswer'): WireSchema {
  return lookup(contract, 'contract.ts', 'CONTRACT_MESSAGES', message)
}
