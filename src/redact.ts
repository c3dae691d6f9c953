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

/** A request URL with every query value replaced by `***` (a token may travel there). */
export function redactQuery(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq < 0 ? pair.slice(0, 100) : `${pair.slice(0, Math.min(eq, 100))}=***`;
    })
    .slice(0, 20)
    .join('&');
  return `${url.slice(0, q)}?${query}`;
}

/** Words that make a `key=value` or `key: value` pair secret (matched inside the key). */
const SECRET_KEY = /password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|cookie|session/i;
/** A key (at most 64 characters) and its separator; the value is read after it. */
const KEY_AND_SEPARATOR = /(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{1,64})["']?[ \t]{0,16}[:=][ \t]{0,16}/g;
const VALUE = /"[^"]*"?|'[^']*'?|[^\s,;&"']+/y;

/**
 * password=..., token: ..., api_key="...", secret_key=..., Cookie: ...: the
 * value of every key that names a secret becomes `***`. A key that does not
 * (`failed: token=x`) leaves its value to be read as text, so a secret pair
 * inside it is still found.
 */
function redactSecretPairs(text: string): string {
  let out = '';
  let copied = 0;
  KEY_AND_SEPARATOR.lastIndex = 0;
  for (let m = KEY_AND_SEPARATOR.exec(text); m; m = KEY_AND_SEPARATOR.exec(text)) {
    if (!SECRET_KEY.test(m[1]!)) continue;
    const valueStart = KEY_AND_SEPARATOR.lastIndex;
    VALUE.lastIndex = valueStart;
    if (!VALUE.exec(text)) continue;
    out += `${text.slice(copied, valueStart)}***`;
    copied = VALUE.lastIndex;
    KEY_AND_SEPARATOR.lastIndex = VALUE.lastIndex;
  }
  return out + text.slice(copied);
}

/**
 * The patterns. Every repetition that can meet a long run of the same
 * characters is bounded, so the cost stays linear in the text's length
 * (the text is attacker-influenced: a job's errorMessage).
 */
const REDACTIONS: ReadonlyArray<(text: string) => string> = [
  // scheme://user:password@host
  (t) => t.replace(/(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}:\/\/[^\s:/@]{0,256}:)[^\s@/]{1,1024}@/gi, '$1***@'),
  // JWTs
  (t) => t.replace(/(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '***'),
  // Authorization: Bearer xxx / Basic xxx
  (t) => t.replace(/\b(bearer|basic)\s{1,16}[A-Za-z0-9._~+/=-]{8,}/gi, '$1 ***'),
  // PEM private keys
  (t) => t.replace(/-----BEGIN [A-Z ]{0,32}PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]{0,32}PRIVATE KEY-----|$)/g, '***'),
  redactSecretPairs,
  // Well-known key formats: AWS access keys, GitHub, Slack, Stripe-like tokens
  (t) => t.replace(/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, '***'),
  (t) => t.replace(/\b(?:gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk_(?:live|test)_[A-Za-z0-9]{10,})\b/g, '***'),
];

/**
 * Redacts secret-looking substrings (passwords in URLs, tokens, keys) from free
 * text, strips control characters and truncates it to `maxLength` characters
 * (an ellipsis marks the cut).
 */
export function redactText(text: string, maxLength: number): string {
  // Truncate generously first so the regexes never run over megabytes.
  let out = text.length > maxLength * 4 ? text.slice(0, maxLength * 4) : text;
  for (const redact of REDACTIONS) out = redact(out);
  // eslint-disable-next-line no-control-regex
  out = out.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ');
  // Lone surrogates would make invalid UTF-8 on the wire.
  out = out.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  if (out.length > maxLength) out = `${out.slice(0, maxLength - 1)}…`;
  return out;
}
