// Runs the wasm32-wasip1 build of the scan-bench example under Node's WASI, to measure the
// engine in V8 (the engine family Envoy runs wasm filters in).
//
//   cargo build -p gitgate-scan --release --target wasm32-wasip1 --example scan-bench
//   node filter/scan/examples/wasm-bench.mjs <path/to/scan-bench.wasm> <source dir> [bench flags]
//
// The source directory is preopened as /src. The default flags hold 16 MB taken from every
// sixth file (as varied as the 100 MB a native run holds) and scan it until 100 MB are read, so
// the module's memory stays small: Node 20's V8 has crashed while a module grew its memory with
// about 100 MB in use.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";

const [wasmPath, sourceDir, ...flags] = process.argv.slice(2);
if (!wasmPath || !sourceDir) {
  console.error("usage: wasm-bench.mjs <scan-bench.wasm> <source dir> [--mb N --hold-mb N --runs N]");
  process.exit(2);
}
const args = flags.length
  ? flags
  : ["--mb", "100", "--hold-mb", "16", "--stride", "6", "--runs", "5"];
const wasi = new WASI({
  version: "preview1",
  args: ["scan-bench", "--source", "/src", ...args],
  env: {},
  preopens: { "/src": sourceDir },
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
