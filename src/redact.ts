/**
 * Redaction of secret-looking content: what leaves the process (API responses,
 * logs, error messages) passes through here first.
 */

/** Replaces the password (and any token-like user info) of a connection URL with `***`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const key of [...u.searchParams.keys()]) {
      if (/pass|secret|token|key/i.test(key)) u.searchParams.set(key, '***');
    }
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}

const REDACTIONS: ReadonlyArray<[RegExp, string]> = [
  // scheme://user:password@host
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]+@/gi, '$1***@'],
  // JWTs
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '***'],
  // Authorization: Bearer xxx / Basic xxx
  [/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 ***'],
  // PEM private keys
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, '***'],
  // password=..., token: ..., api_key="..."
  [/\b([a-z0-9_-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)s?\b["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;&"']+)/gi, '$1***'],
  // Well-known key formats: AWS access keys, GitHub, Slack, Stripe-like tokens
  [/\b(AKIA|ASIA)[A-Z0-9]{16}\b/g, '***'],
  [/\b(gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk_(live|test)_[A-Za-z0-9]{10,})\b/g, '***'],
];

/**
 * Redacts secret-looking substrings (passwords in URLs, tokens, keys) from free
 * text, strips control characters and truncates it to `maxLength` characters
 * (an ellipsis marks the cut).
 */
export function redactText(text: string, maxLength: number): string {
  // Truncate generously first so the regexes never run over megabytes.
  let out = text.length > maxLength * 4 ? text.slice(0, maxLength * 4) : text;
  for (const [pattern, replacement] of REDACTIONS) out = out.replace(pattern, replacement);
  // eslint-disable-next-line no-control-regex
  out = out.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ');
  // Lone surrogates would make invalid UTF-8 on the wire.
  out = out.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  if (out.length > maxLength) out = `${out.slice(0, maxLength - 1)}…`;
  return out;
}
