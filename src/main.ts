#!/usr/bin/env node
// The entry point. Node's compile cache keeps the compiled code of every module on disk (in the
// system's temporary directory), so the provider and each command start about a second sooner
// after the first run; then the command line runs. A cache that cannot be written is skipped.
import module from 'node:module';

module.enableCompileCache?.();
await import('./cli.ts');
