/**
 * What a provider reports about a running contract's machine, in heartbeats and in its final
 * termination record: integers only (DAG-CBOR carries no floats here), each optional field left
 * out when the backend cannot measure it. Counted, never billed: the price is the CCB's.
 */
import { uint, z } from './schema.js'

export interface Usage {
  /** Seconds since the instance was ready (the provider's clock). */
  uptimeSecs: number
  /** CPU time the instance's processes used so far, in milliseconds; absent when the backend cannot tell. */
  cpuMillis?: number
  /** Memory allocated to the instance, in MiB (the grant's, not a measured peak). */
  memMiB?: number
}

export const usageSchema = z.strictObject({
  uptimeSecs: uint,
  cpuMillis: uint.optional(),
  memMiB: uint.optional()
}) satisfies z.ZodType<Usage, any>

export function usageToWire (u: Usage): Record<string, number> {
  return {
    uptimeSecs: u.uptimeSecs,
    ...(u.cpuMillis !== undefined ? { cpuMillis: u.cpuMillis } : {}),
    ...(u.memMiB !== undefined ? { memMiB: u.memMiB } : {})
  }
}
