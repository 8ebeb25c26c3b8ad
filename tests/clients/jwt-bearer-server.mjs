// A token endpoint of the JWT-bearer grant (RFC 7523) as Google's
// (https://oauth2.googleapis.com/token) answers it, for the Google Workspace
// tests of tests/api/transports.rs and providers_e2e.rs. The assertion is
// verified with `jose` (an implementation Herald did not write): RS256 with
// the service account's public key, `iss` = CLIENT_EMAIL, `sub` = SUBJECT,
// `scope` = SCOPE, `aud` = this endpoint's URL, `exp` at most one hour after
// `iat` and not passed. Anything else is refused like Google does (400
// `invalid_grant`); a good assertion gets a fresh access token valid for
// EXPIRES_IN seconds (default 3600).
//
// The service account's key pair is made here with node's crypto: the
// `listening` line hands the test the private key (PKCS#8 PEM, as in a
// service-account JSON's `private_key`) and the private key of another pair
// this endpoint does not trust. One JSON line per token request (never the
// assertion). Exits when its standard input closes.
import http from "node:http";
import crypto from "node:crypto";
import { jwtVerify } from "jose";

const { CLIENT_EMAIL, SUBJECT, SCOPE } = process.env;
const EXPIRES_IN = Number(process.env.EXPIRES_IN ?? 3600);

const pair = () => crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
const trusted = pair();
const untrusted = pair();
const pem = (key) => key.export({ type: "pkcs8", format: "pem" });

let url = null;

const refuse = (res, line, description) => {
  console.log(JSON.stringify({ ...line, ok: false, error: description }));
  res.writeHead(400, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: "invalid_grant", error_description: description }));
};

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    const line = { event: "token", path: req.url, grant_type: form.get("grant_type") };
    if (req.method !== "POST" || req.url !== "/token") {
      res.writeHead(404);
      res.end();
      return;
    }
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      console.log(JSON.stringify({ ...line, ok: false, error: "unsupported_grant_type" }));
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "unsupported_grant_type", error_description: "Invalid grant_type" }));
      return;
    }
    let payload;
    let header;
    try {
      ({ payload, protectedHeader: header } = await jwtVerify(form.get("assertion") ?? "", trusted.publicKey, {
        algorithms: ["RS256"],
        issuer: CLIENT_EMAIL,
        subject: SUBJECT,
        audience: url,
        requiredClaims: ["iat", "exp", "scope"],
      }));
    } catch (e) {
      refuse(res, line, `Invalid JWT: ${e.code ?? "error"}`);
      return;
    }
    Object.assign(line, { alg: header.alg, iss: payload.iss, sub: payload.sub, aud: payload.aud, scope: payload.scope });
    Object.assign(line, { lifetime: payload.exp - payload.iat });
    if (payload.scope !== SCOPE) {
      refuse(res, line, "Invalid scope");
      return;
    }
    if (!(payload.exp > payload.iat && payload.exp - payload.iat <= 3600)) {
      refuse(res, line, "Invalid JWT: exp must be within one hour of iat");
      return;
    }
    const access_token = `ya29.${crypto.randomBytes(24).toString("base64url")}`;
    console.log(JSON.stringify({ ...line, ok: true, access_token }));
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ access_token, expires_in: EXPIRES_IN, token_type: "Bearer" }));
  });
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  url = `http://127.0.0.1:${port}/token`;
  console.log(
    JSON.stringify({
      event: "listening",
      port,
      privateKey: pem(trusted.privateKey),
      untrustedPrivateKey: pem(untrusted.privateKey),
    }),
  );
});
process.stdin.on("end", () => server.close(() => process.exit(0)));
process.stdin.resume();
