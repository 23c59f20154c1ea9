// Runs the wasm32-wasip1 build of the push-scan-bench example under Node's WASI, to measure the
// secret scan of a push in V8 (the engine family Envoy runs wasm filters in).
//
//   cargo build -p gitgate-core --release --target wasm32-wasip1 --example push-scan-bench
//   node filter/core/examples/push-scan-bench.mjs <path/to/push-scan-bench.wasm> [--kind random|text|source --mb N --runs N --source DIR]
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";

const [wasmPath, ...flags] = process.argv.slice(2);
if (!wasmPath) {
  console.error("usage: push-scan-bench.mjs <push-scan-bench.wasm> [--kind random|text|source --mb N --runs N --source DIR]");
  process.exit(2);
}
// `--source DIR` is preopened as /src.
const preopens = {};
const at = flags.indexOf("--source");
if (at >= 0 && flags[at + 1]) {
  preopens["/src"] = flags[at + 1];
  flags[at + 1] = "/src";
}
const wasi = new WASI({ version: "preview1", args: ["push-scan-bench", ...flags], env: {}, preopens });
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
