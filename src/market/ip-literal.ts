/**
 * IP address literals, checked without node:net (market code imports nothing that touches the
 * network). Plain addresses only: no ports, brackets, prefixes or IPv6 zone ids.
 */
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
const IPV4_PATTERN = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`)
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

/** Dotted quad, no leading zeros (`010.0.0.1` is ambiguous: octal to some parsers). */
export function isIpv4 (text: unknown): text is string {
  return typeof text === 'string' && text.length <= 15 && IPV4_PATTERN.test(text)
}

function groupCount (part: string): number | undefined {
  if (part === '') return 0
  const groups = part.split(':')
  let count = 0
  for (const [i, g] of groups.entries()) {
    if (i === groups.length - 1 && g.includes('.')) {
      if (!isIpv4(g)) return undefined
      count += 2
    } else if (HEX_GROUP.test(g)) {
      count += 1
    } else {
      return undefined
    }
  }
  return count
}

/** RFC 4291 text forms: eight groups, one `::` run, an optional trailing dotted quad. */
export function isIpv6 (text: unknown): text is string {
  if (typeof text !== 'string' || text.length < 2 || text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) return false
  const halves = text.split('::')
  if (halves.length > 2) return false
  if (halves.length === 1) return groupCount(text) === 8
  const [head, tail] = halves as [string, string]
  // A dotted quad may only end the address.
  if (head.includes('.')) return false
  const h = groupCount(head)
  const t = groupCount(tail)
  return h !== undefined && t !== undefined && h + t <= 7
}
