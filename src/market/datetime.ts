/**
 * RFC 3339 datetimes as the atproto lexicon format `datetime` spells them
 * (`2027-01-15T08:00:00.000Z`, `…+02:00`): upper-case `T`, a required offset, no `-00:00`, no leap
 * second. Pure: parsing reads no clock.
 */
const DATETIME_PATTERN = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$/

/** Milliseconds since the epoch (fraction truncated to ms), or undefined for anything else. */
export function parseDatetimeMs (text: unknown): number | undefined {
  if (typeof text !== 'string' || text.length > 64) return undefined
  const m = DATETIME_PATTERN.exec(text)
  if (m === null) return undefined
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const fraction = m[7] ?? ''
  const offset = m[8] as string
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const dayMs = new Date(0).setUTCFullYear(year, month - 1, day)
  if (new Date(dayMs).getUTCDate() !== day) return undefined // 31 April, 29 Feb of a common year
  let offsetMinutes = 0
  if (offset !== 'Z') {
    if (offset === '-00:00') return undefined
    const oh = Number(offset.slice(1, 3))
    const om = Number(offset.slice(4, 6))
    if (oh > 23 || om > 59) return undefined
    offsetMinutes = (offset[0] === '-' ? -1 : 1) * (oh * 60 + om)
  }
  const ms = fraction === '' ? 0 : Math.floor(Number(`0${fraction}`) * 1000)
  return dayMs + ((hour * 60 + minute - offsetMinutes) * 60 + second) * 1000 + ms
}

export function isDatetime (text: unknown): text is string {
  return parseDatetimeMs(text) !== undefined
}

/** The canonical form we write: UTC with milliseconds, as `Date.prototype.toISOString` gives. */
export function datetimeFromUnixSecs (secs: number): string {
  return new Date(secs * 1000).toISOString()
}
