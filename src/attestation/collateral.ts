/**
 * DCAP collateral in the @phala/dcap-qvl `QuoteCollateralV3` shape: PEM issuer chains, hex DER
 * CRLs, TCB Info and QE Identity as the exact signed JSON strings with hex r‖s signatures.
 * Validated and size-capped before anything parses it: collateral comes from peers. The signed
 * JSON is checked for every field the verifier and dcap-qvl read, so collateral of the wrong shape
 * is COLLATERAL_MALFORMED rather than a TypeError deep inside verification.
 */
import { z } from 'zod'
import { AttestationError } from './errors.js'
import { TCB_STATUSES } from './policy.js'

export const MAX_COLLATERAL_BYTES = 256 * 1024

const pemChain = z.string().min(1).max(16 * 1024).includes('-----BEGIN CERTIFICATE-----')
const hexDer = z.string().min(2).max(128 * 1024).regex(/^([0-9a-fA-F]{2})+$/)
const signedJson = z.string().min(2).max(64 * 1024)
const hexSig = z.string().regex(/^[0-9a-fA-F]{128}$/, 'expected a 64-byte r‖s signature in hex')

export const collateralSchema = z.object({
  pck_crl_issuer_chain: pemChain,
  root_ca_crl: hexDer,
  pck_crl: hexDer,
  tcb_info_issuer_chain: pemChain,
  tcb_info: signedJson,
  tcb_info_signature: hexSig,
  qe_identity_issuer_chain: pemChain,
  qe_identity: signedJson,
  qe_identity_signature: hexSig
}).strip()

export type Collateral = z.output<typeof collateralSchema>

const hex = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), `expected ${bytes} bytes of hex`)
const date = z.string().max(64).refine((s) => !Number.isNaN(Date.parse(s)), 'expected a date')
const svn = z.number().int().min(0).max(255)
const u16 = z.number().int().min(0).max(0xffff)
// Intel's documented statuses; an unknown one would sort as better than UpToDate in worseStatus.
const tcbStatus = z.enum([...TCB_STATUSES, 'Revoked'])
const advisoryIDs = z.array(z.string().max(64)).max(256).optional()
const components = z.array(z.looseObject({ svn })).length(16)
const moduleIdentity = { mrsigner: hex(48), attributes: hex(8), attributesMask: hex(8) }

/** TDX TCB Info v3: the fields dcap-qvl and the TDX module check read; others pass unread. */
export const tcbInfoSchema = z.looseObject({
  id: z.literal('TDX'),
  version: z.literal(3),
  issueDate: date,
  nextUpdate: date,
  fmspc: hex(6),
  pceId: hex(2),
  tdxModule: z.looseObject(moduleIdentity),
  tdxModuleIdentities: z.array(z.looseObject({
    id: z.string().max(32),
    ...moduleIdentity,
    tcbLevels: z.array(z.looseObject({ tcb: z.looseObject({ isvsvn: svn }), tcbStatus, advisoryIDs })).min(1).max(64)
  })).max(64).optional(),
  tcbLevels: z.array(z.looseObject({
    tcb: z.looseObject({ sgxtcbcomponents: components, pcesvn: u16, tdxtcbcomponents: components }),
    tcbStatus,
    advisoryIDs
  })).min(1).max(256)
})

/** TD_QE identity (v2 or v3). */
export const qeIdentitySchema = z.looseObject({
  id: z.literal('TD_QE'),
  version: z.union([z.literal(2), z.literal(3)]),
  issueDate: date,
  nextUpdate: date,
  miscselect: hex(4),
  miscselectMask: hex(4),
  attributes: hex(16),
  attributesMask: hex(16),
  mrsigner: hex(32),
  isvprodid: u16,
  tcbLevels: z.array(z.looseObject({ tcb: z.looseObject({ isvsvn: u16 }), tcbStatus, advisoryIDs })).min(1).max(64)
})

export type TcbInfo = z.output<typeof tcbInfoSchema>
export type QeIdentity = z.output<typeof qeIdentitySchema>

function malformed (what: string, error: z.ZodError): AttestationError {
  const issue = error.issues[0]
  return new AttestationError('COLLATERAL_MALFORMED', `${what}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim())
}

function signedBody<S extends z.ZodType> (text: string, schema: S, what: string): z.output<S> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new AttestationError('COLLATERAL_MALFORMED', `${what} is not JSON`)
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw malformed(what, parsed.error)
  return parsed.data
}

export interface CheckedCollateral {
  collateral: Collateral
  tcbInfo: TcbInfo
  qeIdentity: QeIdentity
}

/** Validates a collateral object (however it was built) and the signed JSON it carries. */
export function checkCollateral (value: unknown): CheckedCollateral {
  const parsed = collateralSchema.safeParse(value)
  if (!parsed.success) throw malformed('collateral', parsed.error)
  return {
    collateral: parsed.data,
    tcbInfo: signedBody(parsed.data.tcb_info, tcbInfoSchema, 'collateral tcb_info'),
    qeIdentity: signedBody(parsed.data.qe_identity, qeIdentitySchema, 'collateral qe_identity')
  }
}

/** Parses collateral from JSON text or a decoded object; unknown keys are dropped (never trusted). */
export function parseCollateral (input: string | unknown): Collateral {
  let value = input
  if (typeof input === 'string') {
    if (input.length > MAX_COLLATERAL_BYTES) throw new AttestationError('COLLATERAL_MALFORMED', `collateral larger than ${MAX_COLLATERAL_BYTES} bytes`)
    try {
      value = JSON.parse(input)
    } catch {
      throw new AttestationError('COLLATERAL_MALFORMED', 'collateral is not JSON')
    }
  }
  return checkCollateral(value).collateral
}
