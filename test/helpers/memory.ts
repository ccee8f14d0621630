// Memory figures for leak checks, taken after a full garbage collection so that garbage the
// collector has not reached yet is not mistaken for growth.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

export async function settledMemoryUsage(): Promise<NodeJS.MemoryUsage> {
  // Two rounds: finalizers and weak callbacks of the first free more in the second.
  for (let round = 0; round < 2; round++) {
    collectGarbage();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage();
}
