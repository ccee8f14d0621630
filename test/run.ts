// Runs the mocha suite and ends with the plain "N passed, N failed" line CI reads.
import Mocha from 'mocha';
import './helpers/setup.ts';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);

function testFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const full = path.join(directory, name);
    if (statSync(full).isDirectory()) return name === 'helpers' ? [] : testFiles(full);
    return name.endsWith('.test.ts') ? [full] : [];
  });
}

const mocha = new Mocha({ timeout: 30_000, reporter: 'spec', slow: 2000, color: Boolean(process.stdout.isTTY) });
const files = testFiles(root)
  .filter((file) => !only.length || only.some((pattern) => file.includes(pattern)))
  .sort();
for (const file of files) mocha.addFile(file);

await mocha.loadFilesAsync();
const runner = mocha.run((failures) => {
  const { passes = 0, failures: failed = 0, pending = 0 } = runner.stats ?? {};
  console.log(`\n${passes} passed, ${Math.max(failed, failures)} failed${pending ? `, ${pending} skipped` : ''}`);
  process.exitCode = failures || (passes === 0 ? 1 : 0);
  // Open handles (pools, timers) must not keep a finished run alive.
  setTimeout(() => process.exit(process.exitCode), 500).unref();
});
