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

/**
 * Work counters of one redaction, for tests that prove the cost is linear in
 * the text's length without timing it: every pattern is one pass over the
 * text (see REDACTIONS), and the key/value scanner takes one step per key.
 */
export interface RedactStats {
  /** Passes over the text (one per pattern). */
  passes: number;
  /** Characters given to those passes, summed. */
  charsScanned: number;
  /** Keys the key/value scanner looked at. */
  pairSteps: number;
}

/** Longest value, quoted string or token the patterns replace, in characters. */
const MAX_SECRET = 4096;

/**
 * Whether a key names a secret. The key is split into words (`_`, `-`,
 * camelCase); its last word, or its last two words joined, must end with one
 * of SECRET_SUFFIXES or be one of SECRET_WORDS. So `mytoken`, `x-api-key`,
 * `AccountKey`, `PGPASSWORD`, `ssh_pass` and `session` are secret, while
 * `bypass`, `passed`, `tokens`, `compass`, `pass_count`, `token_type` and
 * `password_min_length` are not.
 */
const SECRET_SUFFIXES = [
  'password', 'passwd', 'passphrase', 'pwd', 'secret', 'token', 'apikey', 'accesskey', 'privatekey',
  'accountkey', 'secretkey', 'signingkey', 'credential', 'credentials', 'cookie', 'sessionid',
];
const SECRET_WORDS = new Set(['pass', 'pw', 'session', 'sid', 'sig', 'signature', 'auth']);
/** Cheap first test: a key without any of these cannot be secret. */
const SECRET_HINT = /pass|pw|pwd|secret|token|key|credential|cookie|sess|sid|sig|auth/i;

function isSecretKey(key: string): boolean {
  if (!SECRET_HINT.test(key)) return false;
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[ _-]/)
    .filter((w) => w !== '');
  const last = words.at(-1);
  if (last === undefined) return false;
  if (SECRET_WORDS.has(last)) return true;
  const joined = (words.at(-2) ?? '') + last;
  return SECRET_SUFFIXES.some((s) => last.endsWith(s) || joined.endsWith(s));
}

/**
 * A key (at most 64 characters, after up to two dashes of a command-line
 * flag) and its separator: `:` or `=` (`key=v`, `"key": v`), or blanks
 * (`--password v`, `password 'v'`), where the value is read only after a
 * flag's dashes or when it is quoted, so prose ("password authentication
 * failed") stays as it is.
 */
const KEY_AND_SEPARATOR = /(?<![A-Za-z0-9_-])(-{0,2})([A-Za-z0-9_-]{1,64})(?:(["']?[ \t]{0,16}[:=])|[ \t]{1,16})[ \t]{0,16}/g;
const VALUE = new RegExp(`"[^"]{0,${MAX_SECRET}}"?|'[^']{0,${MAX_SECRET}}'?|[^\\s,;&"']{1,${MAX_SECRET}}`, 'y');

/** The key/value scanner's expressions (for the linearity check of the tests). */
export const PAIR_PATTERNS: readonly RegExp[] = [KEY_AND_SEPARATOR, VALUE];

/**
 * password=..., token: ..., api_key="...", --password ..., Cookie: ...: the
 * value of every key that names a secret becomes `***`. A key that does not
 * (`failed: token=x`) leaves its value to be read as text, so a secret pair
 * inside it is still found.
 */
function redactSecretPairs(text: string, stats?: RedactStats): string {
  let out = '';
  let copied = 0;
  KEY_AND_SEPARATOR.lastIndex = 0;
  for (let m = KEY_AND_SEPARATOR.exec(text); m; m = KEY_AND_SEPARATOR.exec(text)) {
    if (stats) stats.pairSteps++;
    const valueStart = KEY_AND_SEPARATOR.lastIndex;
    const blankSeparated = m[3] === undefined;
    if (blankSeparated && m[1] === '' && text[valueStart] !== '"' && text[valueStart] !== "'") {
      // Prose: the next word is read as a key in turn.
      KEY_AND_SEPARATOR.lastIndex = m.index + m[0].length;
      continue;
    }
    if (!isSecretKey(m[2]!)) continue;
    VALUE.lastIndex = valueStart;
    if (!VALUE.exec(text)) continue;
    out += `${text.slice(copied, valueStart)}***`;
    copied = VALUE.lastIndex;
    KEY_AND_SEPARATOR.lastIndex = VALUE.lastIndex;
  }
  return out + text.slice(copied);
}

/** A run that looks like an AWS secret access key: 40 base64 characters, mixed case and a digit or `+`/`/`, not a path. */
function looksLikeAwsSecret(run: string): boolean {
  if (!/[a-z]/.test(run) || !/[A-Z]/.test(run) || !/[0-9+/]/.test(run)) return false;
  return !(run.startsWith('/') && run.split('/').length > 3);
}

/** A `Basic` credential: base64 with a digit, `+/=`, or a capital after the first character (not an English word). */
function looksLikeBasic(value: string): boolean {
  return /[0-9+/=]/.test(value) || /[A-Z]/.test(value.slice(1));
}

/**
 * Token formats of well-known issuers, replaced whole. The formats are the
 * issuers' documented prefixes and lengths, the same shapes that the gitleaks
 * rule set (MIT licence, https://github.com/gitleaks/gitleaks,
 * config/gitleaks.toml) describes; the expressions are written here so that
 * every repetition is bounded (see REDACTIONS).
 */
export const TOKEN_PATTERNS: ReadonlyArray<{ id: string; pattern: RegExp }> = [
  { id: 'jwt', pattern: /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,4096}\.[A-Za-z0-9_-]{5,4096}\.[A-Za-z0-9_-]{0,4096}/g },
  { id: 'aws-access-key-id', pattern: /\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b/g },
  { id: 'github-token', pattern: /\b(?:gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_[A-Za-z0-9_]{20,255})/g },
  { id: 'gitlab-token', pattern: /\bgl(?:pat|dt|rt|ptt|oas|cbt|imt|ft|soat|agent|ffct)-[A-Za-z0-9_.-]{20,255}/g },
  { id: 'slack-token', pattern: /\b(?:xox[abposre]-[A-Za-z0-9-]{10,255}|xapp-[0-9]-[A-Za-z0-9-]{10,255})/g },
  { id: 'slack-webhook', pattern: /\bhttps?:\/\/hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9+/_-]{10,255}/gi },
  { id: 'discord-webhook', pattern: /\bhttps?:\/\/(?:canary\.|ptb\.)?discord(?:app)?\.com\/api\/webhooks\/[0-9]{5,30}\/[A-Za-z0-9_-]{20,255}/gi },
  { id: 'teams-webhook', pattern: /\bhttps:\/\/[a-z0-9-]{1,63}\.webhook\.office\.com\/webhookb2\/[A-Za-z0-9@/_-]{20,512}/gi },
  { id: 'mailgun-key', pattern: /\bkey-[0-9a-f]{32}\b/g },
  { id: 'stripe-key', pattern: /\b[rs]k_(?:live|test|prod)_[A-Za-z0-9]{10,255}/g },
  { id: 'google-api-key', pattern: /\bAIza[A-Za-z0-9_-]{35}/g },
  { id: 'npm-token', pattern: /\bnpm_[A-Za-z0-9]{36}/g },
  { id: 'openai-anthropic-key', pattern: /(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,255}/g },
  { id: 'sendgrid-key', pattern: /\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}/g },
  { id: 'vault-token', pattern: /\bhv[sbr]\.[A-Za-z0-9_-]{24,255}/g },
  { id: 'pypi-token', pattern: /\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,1024}/g },
  { id: 'digitalocean-token', pattern: /\bdo[opr]_v1_[a-f0-9]{64}/g },
  { id: 'shopify-token', pattern: /\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}/g },
  { id: 'age-secret-key', pattern: /AGE-SECRET-KEY-1[0-9A-Z]{58}/g },
  { id: 'twilio-api-key', pattern: /\bSK[0-9a-fA-F]{32}\b/g },
  { id: 'telegram-bot-token', pattern: /\b[0-9]{8,10}:AA[A-Za-z0-9_-]{33}/g },
  { id: 'azure-ad-client-secret', pattern: /(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}/g },
  { id: 'azure-storage-key', pattern: /(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==/g },
];

/**
 * The redactions, in order. Each is one pass of one regular expression over
 * the text. Every repetition in them is bounded (no `*`, `+` or `{n,}`) and
 * applies to a single character, class or escape, never to a group, so the
 * work at each starting position is bounded by a constant and the whole
 * redaction is linear in the text's length (the text is attacker-influenced:
 * a job's errorMessage). test/redaction-corpus.test.ts checks this property
 * on the expressions themselves.
 */
export const REDACTIONS: ReadonlyArray<{ id: string; pattern: RegExp; replace: (match: string, ...groups: string[]) => string }> = [
  // PEM and PGP private key blocks, to their END line (or 16 KiB when it is missing).
  {
    id: 'private-key-block',
    pattern: /-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]{0,16384}?-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----|[\s\S]{0,16384})/g,
    replace: () => '***',
  },
  // scheme://user:password@host: the password runs to the last @ of the authority (a password may hold @).
  {
    id: 'url-credentials',
    pattern: /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}:\/\/[^\s:/@]{0,256}:)[^\s/]{1,1024}@/gi,
    replace: (_m, prefix) => `${prefix}***@`,
  },
  // Authorization: <scheme> <credentials>, whatever their length.
  {
    id: 'authorization-header',
    pattern: /\b(authorization["']?[ \t]{0,16}[:=][ \t]{0,16}["']?)(?:(bearer|basic|digest|token|negotiate|ntlm|apikey)[ \t]{1,16})?[^\s"',;]{1,4096}/gi,
    replace: (_m, prefix, scheme) => (scheme ? `${prefix}${scheme} ***` : `${prefix}***`),
  },
  { id: 'bearer', pattern: /\b(bearer)[ \t]{1,16}[A-Za-z0-9._~+/=-]{1,4096}/gi, replace: (_m, word) => `${word} ***` },
  {
    id: 'basic',
    pattern: /\b(basic)[ \t]{1,16}([A-Za-z0-9+/=]{8,4096})/gi,
    replace: (m, word, value) => (looksLikeBasic(value) ? `${word} ***` : m),
  },
  ...TOKEN_PATTERNS.map((t) => ({ ...t, replace: () => '***' })),
  {
    id: 'aws-secret-access-key',
    pattern: /(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])/g,
    replace: (m) => (looksLikeAwsSecret(m) ? '***' : m),
  },
];

/** A cut text ends inside a word: drop that partial word (up to 1 KiB) so no half token is shown unrecognised. */
function dropPartialWord(text: string): string {
  let i = text.length;
  while (i > 0 && text.length - i < 1024 && !/\s/.test(text[i - 1]!)) i--;
  return i > 0 && text.length - i < 1024 ? text.slice(0, i) : text;
}

/**
 * Redacts secret-looking substrings (passwords in URLs, tokens, keys) from free
 * text, strips control characters and truncates it to `maxLength` characters
 * (an ellipsis marks the cut). `stats`, when given, counts the work done.
 */
export function redactText(text: string, maxLength: number, stats?: RedactStats): string {
  // Truncate generously first so the regexes never run over megabytes.
  let out = text.length > maxLength * 4 ? text.slice(0, maxLength * 4) : text;
  const cut = out.length < text.length;
  for (const r of REDACTIONS) {
    if (stats) {
      stats.passes++;
      stats.charsScanned += out.length;
    }
    r.pattern.lastIndex = 0;
    out = out.replace(r.pattern, r.replace as (m: string, ...args: string[]) => string);
  }
  if (stats) {
    stats.passes++;
    stats.charsScanned += out.length;
  }
  out = redactSecretPairs(out, stats);
  // eslint-disable-next-line no-control-regex
  out = out.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ');
  // Lone surrogates would make invalid UTF-8 on the wire.
  out = out.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  if (out.length > maxLength || (cut && out.length === maxLength)) out = `${out.slice(0, maxLength - 1)}…`;
  // Redactions shrank the text so far that its first cut shows: it may end in half a token.
  else if (cut) out = `${dropPartialWord(out)}…`;
  return out;
}
