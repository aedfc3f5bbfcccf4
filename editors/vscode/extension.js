// The netdsl extension: the language (highlighting, comments, brackets, folding) is declared in
// package.json; this starts `netdsl lsp` as the language server for .net files. The command is
// the setting `netdsl.server.command` (default: `netdsl` on PATH); empty turns the server off.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

async function activate(context) {
  const config = vscode.workspace.getConfiguration("netdsl");
  const command = config.get("server.command", "netdsl");
  if (!command) {
    return;
  }
  // TransportKind.stdio: the client adds `--stdio`, which `netdsl lsp` accepts
  const server = { command, args: config.get("server.args", ["lsp"]), transport: TransportKind.stdio };
  client = new LanguageClient("netdsl", "netdsl language server", server, {
    documentSelector: [{ language: "netdsl" }],
  });
  try {
    await client.start();
  } catch (error) {
    client = undefined;
    vscode.window.showWarningMessage(
      `netdsl: cannot start \`${command} lsp\` (${error.message}); set netdsl.server.command ` +
        "to the netdsl in your virtual environment, e.g. .venv/bin/netdsl");
  }
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((event) => {
    if (event.affectsConfiguration("netdsl.server")) {
      vscode.window.showInformationMessage("netdsl: reload the window to use the new server settings");
    }
  }));
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
