/**
 * Progress reporting of fit/evaluate: a cli-progress bar on an interactive terminal, plain lines
 * (one per epoch) otherwise. cli-progress is loaded lazily so that nothing terminal-specific is
 * imported in a browser or when progress is off.
 */

/** `true`: a bar on a TTY, one line per pass otherwise; `'auto'`: a bar on a TTY, nothing otherwise; `false`: nothing. */
export type ProgressMode = boolean | 'auto';

/** What fit/evaluate tell the reporter. */
export interface ProgressReporter {
  /** A new pass over the data (`label` e.g. `epoch 1/3`) of `total` steps. */
  start(label: string, total: number): Promise<void>;
  /** Steps done so far, and a short status (`loss 0.2134 acc 0.93`). */
  update(done: number, status?: string): void;
  /** Ends the pass; `line` is the summary written in place of the bar (and to `log`). */
  end(line?: string): void;
  /** True when a bar is drawn (then the caller yields to the event loop so the bar can redraw). */
  readonly interactive: boolean;
}

interface BarLike {
  start(total: number, start: number, payload?: object): void;
  update(value: number, payload?: object): void;
  stop(): void;
}

interface WritableLike {
  isTTY?: boolean;
  write(s: string): unknown;
}

function stdout(): WritableLike | undefined {
  const p = (globalThis as { process?: { stdout?: WritableLike } }).process;
  return p?.stdout;
}

/** True when standard output is an interactive terminal. */
export function isTty(): boolean {
  return stdout()?.isTTY === true;
}

/** Makes a reporter for a progress mode; `log` receives every summary line whatever the mode. */
export function createProgress(mode: ProgressMode, log?: (line: string) => void): ProgressReporter {
  const out = stdout();
  const tty = isTty();
  const bar = mode !== false && tty;
  const plain = mode === true && !tty && out !== undefined;
  let current: BarLike | undefined;
  let label = '';
  const emit = (line: string): void => {
    if (log) log(line);
    if ((bar || plain) && out) out.write(`${line}\n`);
  };
  return {
    interactive: bar,
    async start(l, total) {
      label = l;
      if (!bar) return;
      const mod = (await import('cli-progress')) as unknown as { default?: typeof import('cli-progress') } & typeof import('cli-progress');
      const cp = mod.default ?? mod;
      current = new cp.SingleBar(
        {
          format: `${label} [{bar}] {value}/{total} {status} eta {eta_formatted}`,
          barsize: 24,
          hideCursor: true,
          clearOnComplete: true,
          stream: out as NodeJS.WriteStream,
          etaBuffer: 50,
        },
        cp.Presets.shades_classic,
      );
      current.start(total, 0, { status: '' });
    },
    update(done, status) {
      current?.update(done, status === undefined ? undefined : { status });
    },
    end(line) {
      current?.stop();
      current = undefined;
      if (line !== undefined) emit(line);
    },
  };
}
