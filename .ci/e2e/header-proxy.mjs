// A loopback reverse proxy that adds fixed headers to every request. The conformance
// CLI cannot send an x-api-key, so it talks to the server through this. Host and Origin
// pass through unchanged (the DNS-rebinding scenario depends on them); bodies and SSE
// streams are piped without buffering.
//
//   node header-proxy.mjs --listen 127.0.0.1:PORT --target http://127.0.0.1:PORT --header 'x-api-key: KEY'
import http from 'node:http';

const args = process.argv.slice(2);
const opt = { headers: {} };
for (let i = 0; i < args.length; i += 2) {
  const [flag, value] = [args[i], args[i + 1]];
  if (flag === '--listen') opt.listen = value;
  else if (flag === '--target') opt.target = new URL(value);
  else if (flag === '--header') {
    const at = value.indexOf(':');
    opt.headers[value.slice(0, at).trim().toLowerCase()] = value.slice(at + 1).trim();
  } else throw new Error(`unknown flag ${flag}`);
}
const cut = opt.listen.lastIndexOf(':');
http
  .createServer((req, res) => {
    const upstream = http.request(
      { host: opt.target.hostname, port: opt.target.port, method: req.method, path: req.url, headers: { ...req.headers, ...opt.headers } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        res.flushHeaders();
        up.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  })
  .listen(Number(opt.listen.slice(cut + 1)), opt.listen.slice(0, cut), function () {
    // Port 0 picks a free port; say which, for the caller.
    console.log(`listening http://${opt.listen.slice(0, cut)}:${this.address().port}`);
  });
