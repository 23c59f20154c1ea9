// Runs a test binary built for wasm32-wasip1 under Node's WASI (preview1), so that the core's
// tests also run with 32-bit pointers and the wasm allocator, as inside the proxy-wasm VM.
//
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node $PWD/filter/wasi-test-runner.mjs" \
//     cargo test -p gitgate-core --target wasm32-wasip1
//
// Usage: node wasi-test-runner.mjs <test.wasm> [libtest arguments...]
// The fixtures are embedded in the test binaries, so no directory is preopened.
import { readFile } from "node:fs/promises";
import process from "node:process";
import { WASI } from "node:wasi";

const [wasmPath, ...args] = process.argv.slice(2);
if (!wasmPath) {
  process.stderr.write("usage: node wasi-test-runner.mjs <test.wasm> [args...]\n");
  process.exit(2);
}

const wasi = new WASI({
  version: "preview1",
  args: [wasmPath, ...args],
  env: process.env,
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
