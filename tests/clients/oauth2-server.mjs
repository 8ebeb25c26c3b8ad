// A real OAuth2 server for tests/api/transports.rs: oauth2-mock-server on
// 127.0.0.1 and a port of the system's choice. By default it issues tokens
// to any client; this wrapper makes it refuse every client but CLIENT_ID with
// CLIENT_SECRET (RFC 6749 §5.2 invalid_client), and prints one JSON line per
// token request so the test can count them. The secret is never printed.
// Exits when its standard input closes.
import { OAuth2Server } from "oauth2-mock-server";

const { CLIENT_ID, CLIENT_SECRET } = process.env;
const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");

server.service.on("beforeResponse", (response, req) => {
  const body = req.body ?? {};
  let id = body.client_id;
  let secret = body.client_secret;
  const basic = req.headers.authorization ?? "";
  if (basic.startsWith("Basic ")) {
    const [user, pass] = Buffer.from(basic.slice(6), "base64").toString().split(":");
    id = decodeURIComponent(user);
    secret = decodeURIComponent(pass ?? "");
  }
  const ok = id === CLIENT_ID && secret === CLIENT_SECRET;
  if (!ok) {
    response.statusCode = 401;
    response.body = { error: "invalid_client", error_description: "client authentication failed" };
  }
  const line = {
    event: "token",
    grant_type: body.grant_type,
    client_id: id,
    ok,
    scope: body.scope ?? null,
    access_token: ok ? response.body.access_token : null,
  };
  console.log(JSON.stringify(line));
});

await server.start(0, "127.0.0.1");
console.log(JSON.stringify({ event: "listening", port: server.address().port }));
process.stdin.on("end", () => server.stop().then(() => process.exit(0)));
process.stdin.resume();
