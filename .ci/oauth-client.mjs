// The official MCP TypeScript SDK client signing in to flora-mcp with OAuth, as Claude's connectors do:
// 401 -> protected-resource and authorization-server metadata -> dynamic registration -> /authorize
// -> the consent page (this script plays the user: pastes the FLORA key, presses Allow) -> token
// -> tools/list -> a generation on the sandbox that finishes.
//
//   node .ci/oauth-client.mjs http://127.0.0.1:18323 sk_sandbox_demo
//
// The SDK comes from .ci/node (see .ci/interop). Exits non-zero, with the reason, on any failure.
import { createRequire } from "node:module";

const require = createRequire(new URL("./node/package.json", import.meta.url));
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { UnauthorizedError } = require("@modelcontextprotocol/sdk/client/auth.js");

const [base, floraKey] = process.argv.slice(2);
if (!base || !floraKey) {
  console.error("usage: node .ci/oauth-client.mjs BASE_URL FLORA_KEY");
  process.exit(2);
}
const serverUrl = new URL("/mcp", base);
const redirectUrl = "http://127.0.0.1:1/oauth-callback"; // never fetched: the code is read from the redirect
const steps = [];
const step = (text) => { steps.push(text); console.log(`oauth: ${text}`); };

// The consent page as a user's browser would submit it: cookie and form fields from the GET, then POST.
async function consent(authorizationUrl) {
  const toPage = await fetch(authorizationUrl, { redirect: "manual" });
  if (toPage.status !== 302) throw new Error(`/authorize answered ${toPage.status}: ${await toPage.text()}`);
  const pageUrl = new URL(toPage.headers.get("location"), authorizationUrl);
  const page = await fetch(pageUrl);
  const html = await page.text();
  const cookie = page.headers.get("set-cookie").split(";")[0];
  const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1];
  const client = html.match(/<dt>App<\/dt><dd>([^<]*)<\/dd>/)[1];
  step(`consent page ${pageUrl.pathname} names the client "${client}"`);
  const answer = await fetch(pageUrl.origin + "/consent", {
    method: "POST", redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie, origin: pageUrl.origin },
    body: new URLSearchParams({ request: field("request"), csrf: field("csrf"), api_key: floraKey, action: "approve" }),
  });
  if (answer.status !== 303) throw new Error(`consent POST answered ${answer.status}: ${await answer.text()}`);
  const back = new URL(answer.headers.get("location"));
  step(`consent approved; redirected to ${back.origin}${back.pathname} with a code`);
  return back.searchParams.get("code");
}

class ScriptedProvider {
  constructor() { this.code = null; }
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return { client_name: "MCP TypeScript SDK interop", redirect_uris: [redirectUrl],
             grant_types: ["authorization_code", "refresh_token"], response_types: ["code"],
             token_endpoint_auth_method: "none" };
  }
  clientInformation() { return this.info; }
  saveClientInformation(info) { this.info = info; step(`registered as client ${info.client_id.slice(0, 8)}…`); }
  tokens() { return this.saved; }
  saveTokens(tokens) {
    this.saved = tokens;
    step(`token issued (${tokens.access_token.slice(0, 8)}…, expires in ${tokens.expires_in} s, refresh token: ${!!tokens.refresh_token})`);
  }
  async redirectToAuthorization(url) {
    step(`redirected to ${url.origin}${url.pathname} (PKCE ${url.searchParams.get("code_challenge_method")})`);
    this.code = await consent(url);
  }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

async function main() {
  const unauthenticated = await fetch(serverUrl, { method: "POST", headers: { "content-type": "application/json" },
                                                   body: "{}" });
  step(`no token: ${unauthenticated.status}, WWW-Authenticate: ${unauthenticated.headers.get("www-authenticate")}`);
  if (unauthenticated.status !== 401) throw new Error("expected 401 without a token");

  const provider = new ScriptedProvider();
  let transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider });
  const client = new Client({ name: "oauth-interop", version: "1.0.0" });
  try {
    await client.connect(transport);
    throw new Error("connected without signing in");
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }
  if (!provider.code) throw new Error("no authorization code came back");
  await transport.finishAuth(provider.code);

  transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider });
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  step(`tools/list: ${tools.length} tools (${tools.filter((t) => t.includes("generation")).join(", ")})`);
  const call = async (name, args) => {
    const result = await client.callTool({ name, arguments: args }, undefined, { timeout: 120000 });
    if (result.isError) throw new Error(`${name}: ${result.content?.[0]?.text}`);
    return result.structuredContent;
  };
  const ws = (await call("list_workspaces", {})).workspaces[0].workspace_id;
  const prj = (await call("list_projects", { workspace_id: ws })).projects[0].project_id;
  let run = await call("start_generation", { type: "image", prompt: "a fox signing in with OAuth", workspace_id: ws,
                                             project_id: prj, model: "t2i-flux-2-schnell" });
  for (let i = 0; i < 20 && !["completed", "failed", "cancelled"].includes(run.status); i++) {
    run = await call("get_run", { run_id: run.run_id, wait_seconds: 20 });
  }
  step(`start_generation: run ${run.run_id} ${run.status}`);
  if (run.status !== "completed") throw new Error(`the run ended ${run.status}`);
  await client.close();
  console.log("oauth: ok");
}

main().catch((error) => { console.error(`oauth: FAILED: ${error.stack || error}`); process.exit(1); });
