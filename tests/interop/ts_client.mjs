// The official TypeScript SDK client against the hosted endpoint, over Streamable HTTP and SSE:
// initialize, list tools, call list_models, and start a generation with a progress token.
//
// ES modules resolve packages next to the script, so run a copy beside an install of the SDK:
//   mkdir -p /tmp/ts && npm install --prefix /tmp/ts @modelcontextprotocol/sdk && cp tests/interop/ts_client.mjs /tmp/ts/
//   node /tmp/ts/ts_client.mjs http://127.0.0.1:8000 sk_sandbox_demo   # flora-mcp --sandbox --transport http
// Last run: @modelcontextprotocol/sdk 1.32.2 on Node 22, both transports ok with progress.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";

const [base, key] = process.argv.slice(2);
const headers = { Authorization: `Bearer ${key}` };
const transports = {
  http: () => new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers } }),
  sse: () => new SSEClientTransport(new URL(`${base}/sse`), {
    requestInit: { headers },
    eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...init?.headers, ...headers } }) },
  }),
};

function check(condition, message) {
  if (!condition) throw new Error(message);
}

for (const [name, make] of Object.entries(transports)) {
  const client = new Client({ name: "ts-interop", version: "0" });
  await client.connect(make());
  const tools = (await client.listTools()).tools.map((t) => t.name);
  check(tools.includes("list_models") && tools.includes("start_generation"), `${name}: tools ${tools}`);
  const models = await client.callTool({ name: "list_models", arguments: { type: "image" } });
  check(!models.isError && models.structuredContent.models.length > 0, `${name}: list_models ${JSON.stringify(models)}`);
  const ws = (await client.callTool({ name: "list_workspaces", arguments: {} })).structuredContent.workspaces[0].workspace_id;
  const prj = (await client.callTool({ name: "list_projects", arguments: { workspace_id: ws } })).structuredContent.projects[0].project_id;
  let progress = 0;
  // A prompt per transport: an identical request would be answered with the earlier run, without progress.
  const run = await client.callTool(
    { name: "start_generation", arguments: { type: "image", prompt: `a ts fox over ${name}`, workspace_id: ws, project_id: prj,
      model: "t2i-flux-2-pro", wait_seconds: 20 } },
    undefined, { onprogress: () => { progress += 1; }, timeout: 60000 });
  check(!run.isError && run.structuredContent.status === "completed", `${name}: run ${JSON.stringify(run.structuredContent)}`);
  check(progress > 0, `${name}: no progress notifications`);
  console.log(`${name}: ok (${tools.length} tools, ${models.structuredContent.models.length} image models, ${progress} progress notifications)`);
  await client.close();
}
