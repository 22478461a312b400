// Builds web/dist from web/src with esbuild: the agent console (ES module + CSS + HTML), the
// conference join page (the same), the customer widget (one self-contained IIFE with its CSS inlined
// as text), the demo shop page and a ringtone WAV generated from code. `node build.mjs --watch`
// rebuilds on change.
import { build, context } from "esbuild";
import { mkdir, copyFile, writeFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, "src");
const dist = join(root, "dist");
const watch = process.argv.includes("--watch");

const common = {
  bundle: true,
  minify: !watch,
  sourcemap: true,
  target: ["chrome100", "firefox100", "safari15"],
  legalComments: "none",
  logLevel: "warning",
};

const builds = [
  {
    ...common,
    entryPoints: { app: join(src, "agent/main.js") },
    outdir: join(dist, "agent"),
    format: "esm",
    splitting: false,
  },
  {
    ...common,
    entryPoints: { app: join(src, "agent/app.css") },
    outdir: join(dist, "agent"),
  },
  {
    ...common,
    entryPoints: { join: join(src, "join/main.js") },
    outdir: join(dist, "join"),
    format: "esm",
  },
  {
    ...common,
    entryPoints: { join: join(src, "join/join.css") },
    outdir: join(dist, "join"),
  },
  {
    ...common,
    entryPoints: [join(src, "widget/main.js")],
    outfile: join(dist, "widget.js"),
    format: "iife",
    loader: { ".css": "text" },
  },
];

/** A two-tone telephone ring (440 Hz + 480 Hz, ring-ring, pause), 16-bit mono PCM WAV. */
export function ringtoneWav(sampleRate = 16000) {
  const pattern = [[0.4, true], [0.2, false], [0.4, true], [1.2, false]];
  const total = Math.round(pattern.reduce((s, [d]) => s + d, 0) * sampleRate);
  const data = Buffer.alloc(total * 2);
  let i = 0;
  for (const [duration, on] of pattern) {
    const n = Math.round(duration * sampleRate);
    for (let k = 0; k < n; k++, i++) {
      let v = 0;
      if (on) {
        const t = k / sampleRate;
        const env = Math.min(1, k / 200, (n - k) / 200); // no clicks at the edges
        v = env * 0.35 * (Math.sin(2 * Math.PI * 440 * t) + Math.sin(2 * Math.PI * 480 * t));
      }
      data.writeInt16LE(Math.max(-32767, Math.min(32767, Math.round(v * 32767))), i * 2);
    }
  }
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVE", 8);
  header.write("fmt ", 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36);
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

async function copyStatic() {
  await mkdir(join(dist, "agent"), { recursive: true });
  await mkdir(join(dist, "demo"), { recursive: true });
  await copyFile(join(src, "agent/index.html"), join(dist, "agent/index.html"));
  await copyFile(join(src, "demo/index.html"), join(dist, "demo/index.html"));
  await mkdir(join(dist, "join"), { recursive: true });
  await copyFile(join(src, "join/index.html"), join(dist, "join/index.html"));
  await copyFile(join(src, "demo/demo.css"), join(dist, "demo/demo.css"));
  await copyFile(join(src, "shared/favicon.svg"), join(dist, "favicon.svg"));
  await writeFile(join(dist, "ringtone.wav"), ringtoneWav());
}

async function main() {
  if (!watch) await rm(dist, { recursive: true, force: true });
  await copyStatic();
  if (watch) {
    for (const options of builds) {
      const ctx = await context(options);
      await ctx.watch();
    }
    console.log("watching web/src ...");
    return;
  }
  await Promise.all(builds.map((options) => build(options)));
  console.log("built web/dist");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
