#!/usr/bin/env node
// The entry point. Node's compile cache keeps the compiled code of every module on disk (in the
// system's temporary directory), so the provider and each command start about a second sooner
// after the first run; then the command line runs. A cache that cannot be written is skipped.
import module from 'node:module';
import { availableParallelism } from 'node:os';

// argon2id runs on libuv's thread pool, and each pool thread keeps its last 19 MiB hash block in
// its malloc arena. A CPU-bound hash gains nothing from more threads than cores, so on fewer than 4
// cores Node's 4 threads hold memory for nothing; above 4 the memory of an instance stays bounded
// (run more instances, or set UV_THREADPOOL_SIZE). libuv reads this when the pool first starts,
// which is after this line: nothing before it has used the pool.
process.env.UV_THREADPOOL_SIZE ||= String(Math.min(4, Math.max(2, availableParallelism())));
module.enableCompileCache?.();
await import('./cli.ts');
