/**
 * Redaction of a job's errorMessage against a corpus (issue 11, item 8):
 * more than 100 secret shapes, each replaced exactly where it stands and
 * nothing around it touched, and more than 100 harmless look-alikes that come
 * out unchanged. Then linearity, proven without a clock: every expression has
 * only bounded repetitions of single characters or classes (so the work at
 * each starting position is bounded by a constant), and the counted work of
 * one redaction grows exactly with the text.
 */
import { describe, expect, it } from 'vitest';
import { PAIR_PATTERNS, REDACTIONS, redactText, type RedactStats } from '../src/redact.js';

/** A deterministic pseudo-random generator (mulberry32), so the corpus is the same on every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(11);
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const HEX = '0123456789abcdef';
const pick = (chars: string, n: number) => Array.from({ length: n }, () => chars[Math.floor(random() * chars.length)]).join('');
/** Random text of `n` characters from `chars` with at least one lower case letter, one capital and one digit. */
const mixed = (chars: string, n: number): string => {
  for (;;) {
    const s = pick(chars, n);
    if (/[a-z]/.test(s) && /[A-Z]/.test(s) && /[0-9]/.test(s) && !s.startsWith('/')) return s;
  }
};
const pw = () => `${pick(ALNUM, 6)}!${pick(ALNUM, 5)}`;

/** A secret shape: the text that carries it, what it must become, and the secret itself. */
interface Shape {
  name: string;
  make(): { secret: string; text: string; redacted: string };
}

/** A token that is replaced whole. */
const token = (name: string, gen: () => string): Shape => ({ name, make: () => ((s) => ({ secret: s, text: s, redacted: '***' }))(gen()) });
/** `key<sep>value` where only the value goes. */
const pair = (name: string, before: string, gen: () => string = pw, after = ''): Shape => ({
  name,
  make: () => ((v) => ({ secret: v, text: `${before}${v}${after}`, redacted: `${before}***${after}` }))(gen()),
});

const pem = (label: string): Shape => ({
  name: `${label} block`,
  make: () => {
    const body = Array.from({ length: 4 }, () => pick(`${ALNUM}+/`, 64)).join('\n');
    return { secret: body.slice(0, 30), text: `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----`, redacted: '***' };
  },
});

const SHAPES: Shape[] = [
  token('AWS access key id', () => `AKIA${pick('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}`),
  token('AWS session key id', () => `ASIA${pick('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}`),
  token('AWS secret access key on its own', () => mixed(`${ALNUM}+/`, 40)),
  token('GitHub personal token', () => `ghp_${pick(ALNUM, 36)}`),
  token('GitHub OAuth token', () => `gho_${pick(ALNUM, 36)}`),
  token('GitHub fine-grained token', () => `github_pat_${pick(`${ALNUM}_`, 82)}`),
  token('GitLab personal token', () => `glpat-${pick(`${ALNUM}_-`, 20)}`),
  token('GitLab deploy token', () => `gldt-${pick(`${ALNUM}_-`, 20)}`),
  token('Slack bot token', () => `xoxb-${pick('0123456789', 12)}-${pick('0123456789', 13)}-${pick(ALNUM, 24)}`),
  token('Slack user token', () => `xoxp-${pick('0123456789', 12)}-${pick('0123456789', 12)}-${pick(ALNUM, 32)}`),
  token('Slack webhook URL', () => `https://hooks.slack.com/services/T${pick(ALNUM, 8)}/B${pick(ALNUM, 10)}/${pick(ALNUM, 24)}`),
  token('Slack workflow webhook URL', () => `https://hooks.slack.com/workflows/T${pick(ALNUM, 8)}/A${pick(ALNUM, 10)}/${pick('0123456789', 18)}/${pick(ALNUM, 24)}`),
  token('Discord webhook URL', () => `https://discord.com/api/webhooks/${pick('0123456789', 18)}/${pick(`${ALNUM}_-`, 68)}`),
  token('Teams webhook URL', () => `https://contoso.webhook.office.com/webhookb2/${pick(HEX, 8)}-${pick(HEX, 4)}@${pick(HEX, 8)}/IncomingWebhook/${pick(HEX, 32)}/${pick(HEX, 8)}`),
  token('Mailgun key', () => `key-${pick(HEX, 32)}`),
  token('Stripe live secret key', () => `sk_live_${pick(ALNUM, 24)}`),
  token('Stripe restricted key', () => `rk_test_${pick(ALNUM, 24)}`),
  token('Google API key', () => `AIza${pick(`${ALNUM}_-`, 35)}`),
  token('npm token', () => `npm_${pick(ALNUM, 36)}`),
  token('OpenAI project key', () => `sk-proj-${pick(`${ALNUM}_-`, 48)}`),
  token('OpenAI legacy key', () => `sk-${pick(ALNUM, 20)}T3BlbkFJ${pick(ALNUM, 20)}`),
  token('Anthropic key', () => `sk-ant-api03-${pick(`${ALNUM}_-`, 93)}AA`),
  token('SendGrid key', () => `SG.${pick(`${ALNUM}_-`, 22)}.${pick(`${ALNUM}_-`, 43)}`),
  token('Vault service token', () => `hvs.${pick(`${ALNUM}_-`, 90)}`),
  token('PyPI token', () => `pypi-AgEIcHlwaS5vcmc${pick(`${ALNUM}_-`, 70)}`),
  token('DigitalOcean token', () => `dop_v1_${pick(HEX, 64)}`),
  token('Shopify token', () => `shpat_${pick(HEX, 32)}`),
  token('age secret key', () => `AGE-SECRET-KEY-1${pick('QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L', 58)}`),
  token('Twilio API key', () => `SK${pick(HEX, 32)}`),
  token('Telegram bot token', () => `${pick('123456789', 9)}:AA${pick(`${ALNUM}_-`, 33)}`),
  token('Azure AD client secret', () => `${pick(ALNUM, 3)}8Q~${pick(`${ALNUM}_~.-`, 34)}`),
  token('Azure storage account key on its own', () => `${mixed(`${ALNUM}+/`, 86)}==`),
  token('JWT', () => `eyJ${pick(ALNUM, 30)}.eyJ${pick(ALNUM, 40)}.${pick(`${ALNUM}_-`, 43)}`),
  pair('password=', 'password='),
  pair('pass:', 'pass: '),
  pair('passphrase=', 'passphrase='),
  { name: 'JSON "pass"', make: () => ((v) => ({ secret: v, text: `{"pass":"${v}","user":"deploy"}`, redacted: '{"pass":***,"user":"deploy"}' }))(pw()) },
  { name: 'JSON "password" with blanks', make: () => ((v) => ({ secret: v, text: `{ "password" : "${v}" }`, redacted: '{ "password" : *** }' }))(pw()) },
  pair('--password flag', '--password '),
  pair('--password= flag', '--password='),
  pair('-p style --pass flag', '--pass '),
  { name: "password 'x'", make: () => ((v) => ({ secret: v, text: `password '${v} ${v}'`, redacted: 'password ***' }))(pw()) },
  { name: 'password "x"', make: () => ((v) => ({ secret: v, text: `password "${v}"`, redacted: 'password ***' }))(pw()) },
  pair('PGPASSWORD', 'PGPASSWORD='),
  pair('DB_PASSWORD:', 'DB_PASSWORD: '),
  pair('MYSQL_PWD', 'MYSQL_PWD='),
  pair('api_key=', 'api_key='),
  pair('X-Api-Key header', 'X-Api-Key: '),
  pair('client_secret=', 'client_secret='),
  pair('secret_key:', 'secret_key: '),
  pair('aws_secret_access_key =', 'aws_secret_access_key = ', () => mixed(`${ALNUM}+/`, 40)),
  pair('Azure AccountKey in a connection string', 'DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=', () => `${mixed(`${ALNUM}+/`, 86)}==`, ';EndpointSuffix=core.windows.net'),
  pair('Azure SharedAccessKey', 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=', () => mixed(`${ALNUM}+/`, 43) + '=', ''),
  pair('token:', 'token: '),
  pair('auth_token=', 'auth_token='),
  pair('access_token in a query', 'GET /cb?state=1&access_token='),
  pair('--token=', '--token='),
  pair('ssh_pass', 'ssh_pass='),
  pair('Cookie header', 'Cookie: ', () => `sid=${pick(ALNUM, 24)}`),
  pair('Set-Cookie header', 'Set-Cookie: ', () => `session=${pick(ALNUM, 24)}`),
  pair('session=', 'session='),
  pair("secret: 'x'", 'secret: ', () => `'${pw()}'`),
  { name: 'postgres URL with @ in the password', make: () => ((v) => ({ secret: v, text: `postgres://app:${v}@db.internal:5432/platform`, redacted: 'postgres://app:***@db.internal:5432/platform' }))(`${pick(ALNUM, 4)}@${pick(ALNUM, 4)}@x`) },
  { name: 'mysql URL', make: () => ((v) => ({ secret: v, text: `mysql://root:${v}@db/app`, redacted: 'mysql://root:***@db/app' }))(pw()) },
  { name: 'redis URL without user', make: () => ((v) => ({ secret: v, text: `redis://:${v}@cache:6379/0`, redacted: 'redis://:***@cache:6379/0' }))(pw()) },
  { name: 'amqp URL', make: () => ((v) => ({ secret: v, text: `amqp://guest:${v}@mq/vhost`, redacted: 'amqp://guest:***@mq/vhost' }))(pw()) },
  { name: 'Authorization: Bearer (short)', make: () => ((v) => ({ secret: v, text: `Authorization: Bearer ${v}`, redacted: 'Authorization: Bearer ***' }))(pick(ALNUM, 5)) },
  { name: 'Authorization: Basic', make: () => ((v) => ({ secret: v, text: `Authorization: Basic ${v}`, redacted: 'Authorization: Basic ***' }))(Buffer.from(`u:${pw()}`).toString('base64')) },
  { name: 'authorization=Token', make: () => ((v) => ({ secret: v, text: `authorization=Token ${v}`, redacted: 'authorization=Token ***' }))(pick(ALNUM, 12)) },
  { name: 'Bearer on its own (short)', make: () => ((v) => ({ secret: v, text: `sent Bearer ${v}`, redacted: 'sent Bearer ***' }))(pick(ALNUM, 6)) },
  pem('RSA PRIVATE KEY'),
  pem('PGP PRIVATE KEY BLOCK'),
  pem('OPENSSH PRIVATE KEY'),
  pem('EC PRIVATE KEY'),
  pem('ENCRYPTED PRIVATE KEY'),
  pem('PRIVATE KEY'),
];

/** Text around each secret: the corpus places every shape in each of these. */
const CONTEXTS: Array<[string, string]> = [
  ['', ''],
  ['provisioning failed: ', ' (attempt 3 of 5)'],
];

const SECRET_CASES = SHAPES.flatMap((shape) =>
  CONTEXTS.map(([before, after]) => {
    const { secret, text, redacted } = shape.make();
    return { name: `${shape.name} in ${JSON.stringify([before, after])}`, secret, input: `${before}${text}${after}`, expected: `${before}${redacted}${after}` };
  }),
);

const HARMLESS: string[] = [
  'password authentication failed for user "postgres"',
  'FATAL: password authentication failed for user "ops_overview_reader"',
  'Password must be at least 12 characters',
  'password reset email sent to tenant 42',
  'the token expired at 2026-06-01T12:00:00Z',
  'invalid api key format (expected 32 characters)',
  'secret rotation scheduled for 02:00 UTC',
  'cookie consent banner missing',
  'session expired, please log in again',
  'authorization failed: insufficient scope ops:overview:read',
  'Authorization required',
  'basic setup complete',
  'Basic configuration loaded',
  'bypass: true',
  'passed: 12, failed: 0',
  'compass=north',
  'tokens: 5120',
  'token_count: 5120',
  'token_type: bearer_jwt',
  'tokenizer: bert-base',
  'sessions: 4',
  'session_timeout: 30',
  'keyboard: us',
  'key: hosting.create',
  'monkey=banana',
  'pass_count: 3',
  'password_min_length: 12',
  'passwordless login enabled',
  'userPassword policy: strict',
  'AccountName=acct1;EndpointSuffix=core.windows.net',
  'postgres://user@host/db',
  'postgresql://app@db.internal:5432/platform?sslmode=require',
  'https://example.com/path?a=1&b=2',
  'http://host:8080/x/y',
  'connect ECONNREFUSED 127.0.0.1:5432',
  'Code: `57014`. Message: `canceling statement due to statement timeout`',
  'Error: ENOENT: no such file or directory, open /etc/ops/config.json',
  '    at Object.<anonymous> (/work/main/src/sources/provisioning.ts:10:5)',
  'timeout after 5000 ms',
  'retry 3/5 in 30 s',
  'disk 91% full on /var/lib/postgresql/15/main',
  'hostname SRV1-WEB unreachable',
  'mail to a@b.com bounced',
  'ssl.issue failed: rate limited by ACME (429)',
  'DNS_ZONE example.com NXDOMAIN',
  'SELECT * FROM "ProvisioningJob" WHERE id = $1',
  '-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----',
  '-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----',
  'hooks.slack.com is down',
  'https://discord.com/api/webhooks is the endpoint',
  'key-value store unavailable',
  'posting to https://hooks.slack.com/ failed',
  'AKIA is the prefix of AWS access key ids',
  'AKIA1234 is too short',
  'ghp_short',
  'glpat-short',
  'npm_config_cache=/tmp/npm',
  'AIza only',
  'sk-learn 1.4 installed',
  'task-runner-1 stopped',
  'desk-top-2 online',
  'xoxb-123',
  'sk_live',
  'SKU-12345 out of stock',
  'SG. is a prefix',
  'hvs.short',
  'eyJhbGci alone is no JWT',
  'bearer',
  'a Bearer.',
  'q~ and Q~ alone',
  'base64 dGVzdA== is short',
  '--verbose --dry-run --retries 3',
  '-v --output json',
  'user=deploy host=db port=5432',
  'status: failed, action: hosting.create',
  'x=1 y=2 z=3',
  'tab\tand\nnewline stay',
  'ünïcödé ✓ 日本語 🙂',
  'pwdx is not pwd',
  'keypass vault opened',
  'password',
  'token',
  'secret',
  '{"status":"FAILED","attempts":3}',
  '{"pass_count":3,"fail_count":0}',
  '/usr/local/bin/node /work/main/dist/main.js',
  'job 6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b failed',
  'commit 3f2c1a9e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a39 deployed',
  'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  'authorization header missing',
];
// Generated look-alikes: identifiers with secret-like prefixes but the wrong shape.
for (let i = 0; i < 8; i++) HARMLESS.push(`commit ${pick(HEX, 40)} deployed`);
for (let i = 0; i < 6; i++) HARMLESS.push(`request ${pick(HEX, 8)}-${pick(HEX, 4)}-${pick(HEX, 4)}-${pick(HEX, 4)}-${pick(HEX, 12)} timed out`);
for (let i = 0; i < 4; i++) HARMLESS.push(`at ${new Date(Date.UTC(2026, i, 1 + i)).toISOString()} job ${pick('0123456789', 6)} retried`);
for (let i = 0; i < 4; i++) HARMLESS.push(`ghp_${pick(ALNUM, 10)} npm_${pick(ALNUM, 20)} AIza${pick(ALNUM, 10)} glpat-${pick(ALNUM, 10)}`);
for (let i = 0; i < 4; i++) HARMLESS.push(`/${pick('abcdefghij', 8)}/${pick('abcdefghij', 8)}/${pick('abcdefghij', 8)}/${pick('abcdefghij', 12)}.log rotated`);

describe('redaction corpus', () => {
  it('has at least 100 secret cases and 100 harmless look-alikes', () => {
    expect(SECRET_CASES.length).toBeGreaterThanOrEqual(100);
    expect(HARMLESS.length).toBeGreaterThanOrEqual(100);
  });

  it.each(SECRET_CASES.map((c) => [c.name, c] as const))('%s: replaced where it stands, nothing else touched', (_name, c) => {
    const out = redactText(c.input, 10_000);
    expect(out).toBe(c.expected);
    expect(out).not.toContain(c.secret);
  });

  it.each(HARMLESS.map((h) => [h]))('%j is left as it is', (text) => {
    expect(redactText(text, 10_000)).toBe(text);
  });

  it('a cut that lands in a token drops the half token when redactions made the cut visible', () => {
    const header = '-----BEGIN RSA PRIVATE KEY-----\n';
    const footer = '\n-----END RSA PRIVATE KEY-----';
    const key = `${header}${'A'.repeat(340 - header.length - footer.length - ' then '.length)}${footer}`;
    const text = `${key} then ghp_${'x'.repeat(36)}`;
    // maxLength 90: the first cut, at 360 characters, falls inside the GitHub token (340..380).
    expect(text.indexOf('ghp_')).toBe(340);
    const out = redactText(text, 90);
    expect(out).toBe('*** then …');
  });
});

/** The quantifiers of a regular expression's source, and whether each applies to a group. */
function quantifiers(source: string): Array<{ text: string; onGroup: boolean }> {
  const found: Array<{ text: string; onGroup: boolean }> = [];
  let lastAtomIsGroup = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      i++;
      lastAtomIsGroup = false;
    } else if (c === '[') {
      for (i++; i < source.length && source[i] !== ']'; i++) if (source[i] === '\\') i++;
      lastAtomIsGroup = false;
    } else if (c === '(') {
      // Group syntax after "(" is not a quantifier: (?:  (?=  (?!  (?<=  (?<!  (?<name>
      if (source[i + 1] === '?') {
        i++;
        if (source[i + 1] === '<' && source[i + 2] !== '=' && source[i + 2] !== '!') i = source.indexOf('>', i);
        else i++;
      }
    } else if (c === ')') {
      lastAtomIsGroup = true;
    } else if (c === '*' || c === '+' || c === '?' || c === '{') {
      const text = c === '{' ? source.slice(i, source.indexOf('}', i) + 1) : c;
      found.push({ text, onGroup: lastAtomIsGroup });
      if (c === '{') i = source.indexOf('}', i);
      if (source[i + 1] === '?') i++; // lazy
      lastAtomIsGroup = false;
    } else {
      lastAtomIsGroup = false;
    }
  }
  return found;
}

describe('linear by construction', () => {
  const all = [...REDACTIONS.map((r) => [r.id, r.pattern] as const), ...PAIR_PATTERNS.map((p, i) => [`pair-${i}`, p] as const)];

  it('the checker finds unbounded and group repetitions', () => {
    expect(quantifiers('(a+)+b')).toEqual([
      { text: '+', onGroup: false },
      { text: '+', onGroup: true },
    ]);
    expect(quantifiers('[*+]{1,4}(?:x)?a{2,}')).toEqual([
      { text: '{1,4}', onGroup: false },
      { text: '?', onGroup: true },
      { text: '{2,}', onGroup: false },
    ]);
  });

  it.each(all)('%s repeats only single characters or classes, a bounded number of times', (_id, pattern) => {
    for (const q of quantifiers(pattern.source)) {
      expect(q.text === '?' || /^\{\d+(,\d+)?\}$/.test(q.text), `${q.text} in ${pattern.source}`).toBe(true);
      // An optional group (?) is fine; a repeated group could multiply the paths per position.
      if (q.onGroup) expect(q.text, pattern.source).toBe('?');
    }
    expect(pattern.source).not.toMatch(/\\[1-9]/); // no back-references
  });
});
