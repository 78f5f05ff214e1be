import { InterruptedError } from '../exit-codes.js';

/** Throws an {@link InterruptedError} when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError();
}

/**
 * Lets pending signal handlers run (a training step is synchronous work; without a turn of the
 * event loop SIGINT would only be seen when fit ends), then throws if the run was interrupted.
 */
export async function abortable(signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return;
  await new Promise<void>((resolve) => setImmediate(resolve));
  throwIfAborted(signal);
}
