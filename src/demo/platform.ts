/**
 * The simulated platform's fixed shape: its core nodes, provisioning queues
 * with their actions and realistic failures, tenants, cloud pods, WAF
 * policies and Guardian checks. Values follow platform-schema.md.
 */

/** The eight core nodes every platform has. */
export const CORE_NODES = [
  { hostname: 'SRV1-WEB', role: 'WEB', cpu: 38, ram: 61, disk: 54 },
  { hostname: 'MAIL-CORE', role: 'MAIL', cpu: 22, ram: 48, disk: 67 },
  { hostname: 'DNS-CORE', role: 'DNS', cpu: 9, ram: 27, disk: 21 },
  { hostname: 'CLOUD-CORE', role: 'CLOUD', cpu: 57, ram: 72, disk: 63 },
  { hostname: 'MIGRAGUARD-QUANTUM', role: 'SECURITY', cpu: 44, ram: 58, disk: 39 },
  { hostname: 'DB-CORE', role: 'DATABASE', cpu: 35, ram: 78, disk: 71 },
  { hostname: 'MPANEL-CORE', role: 'PANEL', cpu: 18, ram: 41, disk: 33 },
  { hostname: 'VOIP-CORE', role: 'VOIP', cpu: 14, ram: 33, disk: 26 },
] as const;

/** Hostname of a core node. */
export type CoreNodeName = (typeof CORE_NODES)[number]['hostname'];

/** Names of the core nodes, in display order. */
export const CORE_NODE_NAMES: readonly CoreNodeName[] = CORE_NODES.map((n) => n.hostname);

/** The `CoreNode.id` the simulator uses for a hostname (stable across runs). */
export function coreNodeId(hostname: string): string {
  return `node_${hostname.toLowerCase().replace(/[^a-z0-9]+/g, '_')}`;
}

/** A provisioning action: what a job does to which kind of resource. */
export interface ActionDef {
  action: string;
  resourceType: string;
  /** Relative frequency within its queue. */
  weight: number;
}

/** One BullMQ queue of the provisioning module. */
export interface QueueDef {
  name: ProvisioningQueue;
  /** Mean new jobs a minute in normal operation. */
  perMinute: number;
  /** Share of jobs that end FAILED in normal operation (0..1). */
  failureRate: number;
  /** Typical run time range, seconds. */
  durationSeconds: readonly [number, number];
  actions: readonly ActionDef[];
  /** Errors as the platform's workers report them. */
  errors: readonly string[];
}

/** Queue names of the provisioning module. */
export type ProvisioningQueue = 'hosting' | 'dns' | 'mail' | 'ssl' | 'backup' | 'cloudpod';

/** Every provisioning queue the simulator runs. */
export const QUEUES: readonly QueueDef[] = [
  {
    name: 'hosting',
    perMinute: 9,
    failureRate: 0.03,
    durationSeconds: [2, 9],
    actions: [
      { action: 'hosting.create', resourceType: 'WEBSITE', weight: 5 },
      { action: 'hosting.php.update', resourceType: 'WEBSITE', weight: 3 },
      { action: 'hosting.suspend', resourceType: 'WEBSITE', weight: 1 },
      { action: 'hosting.delete', resourceType: 'WEBSITE', weight: 1 },
    ],
    errors: [
      "nginx -t failed: duplicate server name \"{domain}\" in /etc/nginx/sites-enabled/{site}.conf:3",
      "useradd: user '{site}' already exists",
      'connect ECONNREFUSED 10.20.0.11:8443 (SRV1-WEB agent)',
      'quota: disk limit exceeded for tenant {tenant} (10240 MiB)',
    ],
  },
  {
    name: 'dns',
    perMinute: 12,
    failureRate: 0.02,
    durationSeconds: [1, 4],
    actions: [
      { action: 'dns.zone.sync', resourceType: 'DNS_ZONE', weight: 6 },
      { action: 'dns.zone.create', resourceType: 'DNS_ZONE', weight: 2 },
      { action: 'dns.record.update', resourceType: 'DNS_RECORD', weight: 4 },
    ],
    errors: [
      'PowerDNS API returned 422: RRset {domain}. IN CNAME: Conflicts with pre-existing RRset',
      'PowerDNS API request timed out after 10000 ms (DNS-CORE)',
      'zone {domain} is not delegated to ns1.migrahosting.example (found ns1.oldhost.example)',
    ],
  },
  {
    name: 'mail',
    perMinute: 6,
    failureRate: 0.025,
    durationSeconds: [1, 6],
    actions: [
      { action: 'mail.mailbox.create', resourceType: 'MAILBOX', weight: 5 },
      { action: 'mail.domain.create', resourceType: 'MAIL_DOMAIN', weight: 2 },
      { action: 'mail.mailbox.quota', resourceType: 'MAILBOX', weight: 2 },
    ],
    errors: [
      'doveadm quota recalc failed: Mailbox INBOX: Internal error occurred. Refer to server log for more information.',
      'postmap /etc/postfix/virtual_mailbox_maps timed out after 30s on MAIL-CORE',
      'mailbox info@{domain} already exists',
    ],
  },
  {
    name: 'ssl',
    perMinute: 5,
    failureRate: 0.06,
    durationSeconds: [3, 12],
    actions: [
      { action: 'ssl.issue', resourceType: 'CERTIFICATE', weight: 3 },
      { action: 'ssl.renew', resourceType: 'CERTIFICATE', weight: 5 },
    ],
    errors: [
      'ACME order failed: urn:ietf:params:acme:error:rateLimited: too many certificates (5) already issued for this exact set of domains in the last 168h',
      'ACME challenge failed for {domain}: DNS problem: NXDOMAIN looking up A for {domain}',
      'ACME challenge failed for {domain}: Invalid response from http://{domain}/.well-known/acme-challenge/x9Qw: 404',
    ],
  },
  {
    name: 'backup',
    perMinute: 3,
    failureRate: 0.04,
    durationSeconds: [5, 20],
    actions: [
      { action: 'backup.website.snapshot', resourceType: 'WEBSITE', weight: 4 },
      { action: 'backup.restore', resourceType: 'WEBSITE', weight: 1 },
      { action: 'backup.pod.snapshot', resourceType: 'CLOUD_POD', weight: 2 },
    ],
    errors: [
      'restic: repository is already locked exclusively by PID 4123 on MPANEL-CORE',
      'pg_dump: error: connection to server at "db-core" failed: FATAL: password authentication failed for user "backup" (postgresql://backup:Sup3rS3cret-demo@db-core:5432/tenant_{tenantNum})',
      'rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338)',
    ],
  },
  {
    name: 'cloudpod',
    perMinute: 2,
    failureRate: 0.05,
    durationSeconds: [8, 30],
    actions: [
      { action: 'cloudpod.create', resourceType: 'CLOUD_POD', weight: 3 },
      { action: 'cloudpod.resize', resourceType: 'CLOUD_POD', weight: 2 },
      { action: 'cloudpod.destroy', resourceType: 'CLOUD_POD', weight: 1 },
    ],
    errors: [
      'insufficient capacity on CLOUD-CORE: requested 8 vCPU / 16 GiB, 3 vCPU / 5 GiB free',
      "libvirt: operation failed: domain '{pod}' already exists with uuid 6f1c2a9e-3b7d-4c1e-9a55-0d2f1e8b7c44",
      'Error: ENOSPC: no space left on device, write\n    at CloudPodProvisioner.writeImage (/srv/mpanel/modules/cloudpods/provisioner.js:214:11)\n    at async CloudPodProvisioner.create (/srv/mpanel/modules/cloudpods/provisioner.js:88:5)\n    at async Worker.processJob (/srv/mpanel/node_modules/bullmq/dist/cjs/classes/worker.js:455:28)',
    ],
  },
];

/** Names of the provisioning queues. */
export const QUEUE_NAMES: readonly ProvisioningQueue[] = QUEUES.map((q) => q.name);

/** The definition of a queue by name. */
export function queueDef(name: string): QueueDef {
  const q = QUEUES.find((d) => d.name === name);
  if (!q) throw new Error(`unknown queue "${name}"; known: ${QUEUE_NAMES.join(', ')}`);
  return q;
}

/** Number of tenants on the simulated platform. */
export const TENANT_COUNT = 240;

/** The id of tenant `n` (1-based). */
export function tenantId(n: number): string {
  return `tenant_${String(n).padStart(4, '0')}`;
}

/** Cloud pods, each backed up nightly under its own resourceId. */
export const CLOUD_PODS = ['pod-eu1-01', 'pod-eu1-02', 'pod-eu1-03', 'pod-us1-01', 'pod-us1-02', 'pod-ap1-01'] as const;

/** Backup resource types the simulator writes, with their nightly schedule. */
export const BACKUP_SYSTEMS = [
  { resourceType: 'DB_CORE', resourceIds: ['mpanel-db'], hourUtc: 1, durationMinutes: [18, 35], sizeGiB: [38, 46] },
  { resourceType: 'MPANEL_CORE', resourceIds: ['mpanel-app'], hourUtc: 2, durationMinutes: [6, 14], sizeGiB: [4, 6] },
  { resourceType: 'CLOUD_POD', resourceIds: CLOUD_PODS, hourUtc: 3, durationMinutes: [4, 25], sizeGiB: [6, 80] },
] as const;

/** A backup resource type the simulator writes. */
export type BackupResourceType = (typeof BACKUP_SYSTEMS)[number]['resourceType'];

/** The backup resource types, in display order. */
export const BACKUP_RESOURCE_TYPES: readonly BackupResourceType[] = BACKUP_SYSTEMS.map((b) => b.resourceType);

/** Migra Shield policies: name and mode; `global` ones have no tenant. */
export const SHIELD_POLICIES: ReadonlyArray<{ id: string; name: string; mode: 'ENFORCE' | 'MONITOR' | 'DISABLED'; global: boolean }> = [
  { id: 'pol_owasp_core', name: 'OWASP core rule set', mode: 'ENFORCE', global: true },
  { id: 'pol_bad_bots', name: 'Known bad bots', mode: 'ENFORCE', global: true },
  { id: 'pol_wp_login', name: 'WordPress login brute force', mode: 'ENFORCE', global: true },
  { id: 'pol_xmlrpc', name: 'Block xmlrpc.php', mode: 'ENFORCE', global: true },
  { id: 'pol_rate_api', name: 'API rate limit 600/min', mode: 'ENFORCE', global: true },
  { id: 'pol_geo_challenge', name: 'Challenge high-risk countries', mode: 'MONITOR', global: true },
  { id: 'pol_sqli_strict', name: 'SQL injection (paranoia level 3)', mode: 'MONITOR', global: true },
  { id: 'pol_legacy_ua', name: 'Legacy user agents', mode: 'DISABLED', global: true },
  ...Array.from({ length: 28 }, (_, i) => ({
    id: `pol_tenant_${String(i + 1).padStart(3, '0')}`,
    name: ['Admin area allowlist', 'Checkout rate limit', 'Block scraping of /search', 'Country block', 'Hotlink protection'][i % 5]!,
    mode: (i % 7 === 3 ? 'DISABLED' : i % 3 === 1 ? 'MONITOR' : 'ENFORCE') as 'ENFORCE' | 'MONITOR' | 'DISABLED',
    global: false,
  })),
];

/** Request paths seen by the WAF, with how often ordinary traffic hits them. */
export const SHIELD_PATHS = {
  '/': 30,
  '/wp-login.php': 4,
  '/wp-admin/admin-ajax.php': 6,
  '/api/v1/orders': 8,
  '/cart': 6,
  '/checkout': 3,
  '/search': 7,
  '/static/app.js': 20,
  '/xmlrpc.php': 1,
  '/.env': 0.3,
  '/graphql': 4,
} as const;

/** Paths attackers hammer during a BLOCK burst. */
export const ATTACK_PATHS = ['/wp-login.php', '/xmlrpc.php', '/.env', '/api/v1/login', "/search?q=1'+OR+1=1--", '/.git/config'] as const;

/** Guardian checks: title template and the severity it is usually raised with. */
export const GUARDIAN_CHECKS = [
  { title: 'Outdated WordPress core ({version}) on {site}', severity: 'MEDIUM' },
  { title: 'Vulnerable plugin contact-form-7 < 5.8.4 on {site}', severity: 'HIGH' },
  { title: 'TLS certificate expires in 6 days for {domain}', severity: 'LOW' },
  { title: 'World-writable directory wp-content/uploads on {site}', severity: 'MEDIUM' },
  { title: 'SSH password authentication enabled on {node}', severity: 'HIGH' },
  { title: 'Kernel update pending reboot on {node}', severity: 'LOW' },
  { title: 'Directory listing enabled on {site}', severity: 'LOW' },
  { title: 'PHP 7.4 (end of life) in use by {site}', severity: 'MEDIUM' },
  { title: 'Open resolver reachable from the internet on {node}', severity: 'INFO' },
] as const;

/** Critical findings raised by the `critical-finding` scenario. */
export const CRITICAL_FINDING_TITLES = [
  'Webshell detected: /var/www/{site}/wp-content/uploads/2026/11/cache.php',
  'Rootkit signature (Diamorphine) found in loaded kernel modules on {node}',
  'Exposed .env with database credentials served by {site}',
] as const;

/** Fills `{site}`, `{domain}`, `{tenant}`, `{tenantNum}`, `{pod}`, `{node}`, `{version}` in a template. */
export function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, key: string) => values[key] ?? m);
}
