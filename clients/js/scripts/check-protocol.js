// Fails when docs/protocol.md names a command, an event, an error code or a
// close code that src/index.d.ts does not have: the types keep in step with
// the protocol as documented.
//
//   node scripts/check-protocol.js [path/to/protocol.md]

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const doc = readFileSync(process.argv[2] ?? here("../../../docs/protocol.md"), "utf8");
const types = readFileSync(here("../src/index.d.ts"), "utf8");

/** The text of the `## title` section (up to the next `## `). */
function section(title) {
  const start = doc.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`docs/protocol.md has no "## ${title}" section`);
  const end = doc.indexOf("\n## ", start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

/** Names in `### \`a\` / \`b\`` headings of a section. */
function headingNames(text) {
  return [...text.matchAll(/^### (.+)$/gm)].flatMap(([, line]) => [...line.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]));
}

const commands = headingNames(section("Commands (client → server)"));
const events = section("Events (server → client)");
const eventTypes = new Set([...headingNames(events), ...[...events.matchAll(/"type": "([a-z_]+)"/g)].map((m) => m[1])]);
const errorSection = events.slice(events.indexOf("### `error`"));
const errorCodes = [...errorSection.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
const closeCodes = [...section("Close codes").matchAll(/^\| (\d{4}) \|/gm)].map((m) => m[1]);

const missing = [];
const check = (kind, names, present) => {
  if (!names.length) missing.push(`no ${kind} found in docs/protocol.md (has its layout changed?)`);
  for (const name of names) if (!present(name)) missing.push(`${kind} ${name}`);
};
const quoted = (name) => types.includes(`"${name}"`);
check("command", commands, (name) => types.includes(`type: "${name}"`));
check("event", [...eventTypes], (name) => types.includes(`type: "${name}"`));
check("error code", errorCodes, quoted);
check("close code", closeCodes, (code) => new RegExp(`\\b${code}\\b`).test(types.slice(types.indexOf("CloseCode ="))));

if (missing.length) {
  console.error(`clients/js/src/index.d.ts is behind docs/protocol.md; missing:\n  ${missing.join("\n  ")}`);
  process.exit(1);
}
console.log(
  `check-protocol: ${commands.length} commands, ${eventTypes.size} events, ${errorCodes.length} error codes, ${closeCodes.length} close codes: all typed`,
);
