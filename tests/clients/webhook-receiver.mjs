// A receiver for Herald's HTTP provider (tests/api/transports.rs): checks
// every request with the Standard Webhooks reference library
// (`standardwebhooks`) and WEBHOOK_SECRET, prints one JSON line per request,
// and answers 204 when the signature holds, 401 when it does not. STATUSES
// (comma-separated, e.g. "503,429") are answered first, in order, to
// verified requests. Exits when its standard input closes.
import http from "node:http";
import { Webhook } from "standardwebhooks";

const webhook = new Webhook(process.env.WEBHOOK_SECRET);
const statuses = (process.env.STATUSES ?? "").split(",").filter(Boolean).map(Number);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString();
    let verified = false;
    let payload = null;
    let error = null;
    try {
      payload = webhook.verify(body, req.headers);
      verified = true;
    } catch (e) {
      error = String(e.message ?? e);
    }
    const status = verified ? (statuses.shift() ?? 204) : 401;
    console.log(
      JSON.stringify({
        event: "request",
        method: req.method,
        path: req.url,
        verified,
        error,
        id: req.headers["webhook-id"] ?? null,
        contentType: req.headers["content-type"] ?? null,
        payload,
        status,
      }),
    );
    res.writeHead(status, { "content-type": "application/json" });
    res.end(status === 204 ? undefined : JSON.stringify({ status }));
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ event: "listening", port: server.address().port }));
});
process.stdin.on("end", () => server.close(() => process.exit(0)));
process.stdin.resume();
