// A minimal MCP Apps host: the official AppBridge on the host side, the app in a sandboxed iframe.
// The MCP connection lives in the harness (Python, official SDK client over stdio); it is reached
// through functions the harness exposes on window (hostCallTool, hostReadResource).
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

// The CSP a host applies to an app, as the MCP Inspector builds it: nothing beyond inline script and
// style unless the resource's _meta.ui.csp declares it (not even data: images).
function cspFor(csp) {
  const list = (domains, none) => (domains && domains.length ? domains.join(" ") : none);
  const res = list(csp && csp.resourceDomains, "'none'");
  const inline = res === "'none'" ? "'unsafe-inline'" : `'unsafe-inline' ${res}`;
  return [
    "default-src 'none'",
    `connect-src ${list(csp && csp.connectDomains, "'none'")}`,
    `script-src ${inline}`,
    `style-src ${inline}`,
    `img-src ${res}`,
    `font-src ${res}`,
    `media-src ${res}`,
    `frame-src ${list(csp && csp.frameDomains, "'none'")}`,
    "base-uri 'self'",
    "form-action 'none'",
    "object-src 'none'",
    "worker-src 'none'",
  ].join("; ");
}

window.hostLog = [];

window.mountApp = async function mountApp({ html, csp, tool, args, result, theme }) {
  const policy = cspFor(csp);
  const doc = html.replace("<head>", `<head><meta http-equiv="Content-Security-Policy" content="${policy}">`);
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.setAttribute("title", "FLORA app");
  frame.style.cssText = "width:100%;border:0;height:200px;display:block";
  document.getElementById("apps").replaceChildren(frame);
  const bridge = new AppBridge(
    null,
    { name: "flora-harness-host", version: "1.0.0" },
    { serverTools: {}, serverResources: {}, downloadFile: {}, openLinks: {} },
    { hostContext: { theme: theme || "light", toolInfo: { tool }, displayMode: "inline" } },
  );
  bridge.oncalltool = async (params) => {
    window.hostLog.push({ method: "tools/call", name: params.name, arguments: params.arguments });
    return await window.hostCallTool(JSON.stringify(params)).then(JSON.parse);
  };
  bridge.onreadresource = async (params) => {
    window.hostLog.push({ method: "resources/read", uri: params.uri });
    return await window.hostReadResource(JSON.stringify(params)).then(JSON.parse);
  };
  bridge.ondownloadfile = async (params) => {
    window.hostLog.push({ method: "ui/download-file", contents: params.contents });
    return {};
  };
  bridge.onopenlink = async (params) => {
    window.hostLog.push({ method: "ui/open-link", url: params.url });
    return {};
  };
  bridge.onsizechange = ({ height }) => {
    if (height) frame.style.height = `${Math.min(Math.ceil(height) + 4, 4000)}px`;
  };
  const initialized = new Promise((resolve) => { bridge.oninitialized = resolve; });
  // Listen before the app loads: it sends ui/initialize as soon as its script runs.
  await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));
  frame.srcdoc = doc;
  await initialized;
  await bridge.sendToolInput({ arguments: args || {} });
  window.resultSentAt = Date.now();
  await bridge.sendToolResult(result);
  window.currentBridge = bridge;
  return policy;
};
