// The compose demo's stand-in for PagerDuty and Slack: Alertmanager posts its
// webhook notifications here (docker/alertmanager/alertmanager.demo.yml) and
// each alert becomes one log line, so paging is visible in
// `docker compose logs -f webhook-logger`. Plain Node, no dependencies.
import http from 'node:http';

const port = Number(process.env.PORT ?? 9099);
const MAX_BODY = 1024 * 1024;

function line(receiver, alert) {
  const labels = alert.labels ?? {};
  const target = ['platform', 'node', 'queue', 'type', 'resource_type', 'source', 'decision', 'instance']
    .filter((k) => labels[k])
    .map((k) => `${k}=${labels[k]}`)
    .join(' ');
  const kind = receiver === 'ops-pager' ? 'PAGE' : receiver === 'ops-watchdog' ? 'WATCHDOG' : 'NOTIFY';
  const summary = alert.annotations?.summary ?? '';
  return `${new Date().toISOString()} ${kind} ${receiver} ${String(alert.status ?? '').toUpperCase()} ${labels.alertname ?? '?'} severity=${labels.severity ?? '?'}${target ? ` ${target}` : ''}${summary ? ` - ${summary}` : ''}`;
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    return;
  }
  const match = /^\/alerts\/([\w.-]+)$/.exec(req.url ?? '');
  if (req.method !== 'POST' || !match) {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const alert of body.alerts ?? []) console.log(line(match[1], alert));
      res.writeHead(200).end();
    } catch (err) {
      console.error(`webhook-logger: unreadable notification for ${match[1]}: ${err.message}`);
      res.writeHead(400).end();
    }
  });
});

server.listen(port, '0.0.0.0', () => console.log(`webhook-logger: listening on :${port}`));
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
