// A third-party OpenID Connect server (oauth2-mock-server) dressed as Entra ID, for
// the sign-in interoperability test of package server (TestSignInWithThirdPartyOIDC).
//
// It listens on 127.0.0.1 on a port the system picks and prints one line,
// "OIDC_MOCK_URL=http://127.0.0.1:PORT", when ready. What it adds to the mock:
//   - Entra's paths under the "organizations" tenant:
//       /organizations/v2.0/.well-known/openid-configuration
//       /organizations/oauth2/v2.0/authorize   (approves at once, redirects back)
//       /organizations/oauth2/v2.0/token       (authorization_code + PKCE S256)
//       /organizations/discovery/v2.0/keys
//   - discovery naming the issuer "<base>/{tenantid}/v2.0", as Entra does for
//     multi-tenant templates;
//   - id tokens with Entra's claims: tid, oid, email, preferred_username, name, and
//     the per-tenant issuer "<base>/<tid>/v2.0".
import { OAuth2Server, Events } from "oauth2-mock-server";

export const TENANT_ID = "5d2a8c41-7e3b-4f96-a0c8-1b9e2f4d6a73";
export const OBJECT_ID = "c3e1f7a9-24b6-4d8e-9f10-6a5b4c3d2e1f";
export const EMAIL = "mock.user@fabrikam-mock.example";

const server = new OAuth2Server(undefined, undefined, {
  endpoints: {
    wellKnownDocument: "/organizations/v2.0/.well-known/openid-configuration",
    authorize: "/organizations/oauth2/v2.0/authorize",
    token: "/organizations/oauth2/v2.0/token",
    jwks: "/organizations/discovery/v2.0/keys",
  },
});
await server.issuer.keys.generate("RS256");
await server.start(0, "127.0.0.1");
// The mock names itself "localhost"; the Go side and its cookies use 127.0.0.1.
server.issuer.url = `http://127.0.0.1:${server.address().port}`;
const base = server.issuer.url;
const tenantIssuer = (tid) => `${base}/${tid}/v2.0`;

server.service.on(Events.BeforeWellKnownOpenIdConfiguration, (config) => {
  config.body.issuer = tenantIssuer("{tenantid}");
  config.body.token_endpoint_auth_methods_supported = ["client_secret_post", "client_secret_basic"];
  config.body.scopes_supported = ["openid", "profile", "email", "offline_access"];
});

server.service.on(Events.BeforeTokenSigning, (token) => {
  Object.assign(token.payload, {
    iss: tenantIssuer(TENANT_ID),
    tid: TENANT_ID,
    oid: OBJECT_ID,
    sub: "pairwise-subject-" + OBJECT_ID.slice(0, 8),
    email: EMAIL,
    preferred_username: EMAIL,
    name: "Mock User",
    ver: "2.0",
  });
});

console.log(`OIDC_MOCK_URL=${base}`);

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    await server.stop();
    process.exit(0);
  });
}
