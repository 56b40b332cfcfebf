// Progress on stderr while a command runs (stdout keeps the results: tables, paths). Four modes:
// - bars: cli-progress bars (a TTY): steps/s, ETA, the loss and each loss part, lr, gradient norm;
//   evaluations, checkpoints and phase messages are printed above the bars.
// - lines: plain lines (CI logs, pipes): the same fields, about 20 lines a run plus one at least
//   every 15 s, and every evaluation.
// - json: each event as one JSON line (machines, tests).
// - none: nothing but errors.
// The default is bars on a TTY, lines otherwise.
import { MultiBar, type SingleBar } from 'cli-progress';

import type { ProgressEvent } from '../distill/train';
import type { TaskEvent } from '../eval/rerank';

export type ProgressMode = 'bars' | 'lines' | 'json' | 'none';
export const PROGRESS_MODES: readonly ProgressMode[] = ['bars', 'lines', 'json', 'none'];

export type CliEvent = ProgressEvent | TaskEvent;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const num = (x: number) =>
  x === 0 ? '0' : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(2);

/** "0.6523 = ranknet 0.4210 + kl 0.2313" */
export function formatLoss(loss: number, parts: Record<string, number>): string {
  const names = Object.keys(parts);
  if (names.length <= 1 && (names.length === 0 || Math.abs(parts[names[0]] - loss) < 1e-9))
    return `${num(loss)}${names.length ? ` (${names[0]})` : ''}`;
  return `${num(loss)} = ${names.map((n) => `${n} ${num(parts[n])}`).join(' + ')}`;
}

export class Progress {
  private multi: MultiBar | null = null;
  private bars = new Map<string, SingleBar>();
  private lastLine = new Map<string, number>();
  private label = 'run';
  private scoreFiles = new Set<string>();

  constructor(
    readonly mode: ProgressMode,
    private readonly stream: NodeJS.WritableStream = process.stderr,
  ) {}

  static defaultMode(stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr): ProgressMode {
    return stream.isTTY ? 'bars' : 'lines';
  }

  /** The name the next training run's events are shown under (e.g. "teacher", "hard pairwise"). */
  setLabel(label: string): void {
    this.label = label;
  }

  /** A message (a phase starting, a result): above the bars, or a line. */
  info(message: string): void {
    if (this.mode === 'none') return;
    if (this.mode === 'json') return this.write(`${JSON.stringify({ type: 'info', message })}\n`);
    if (this.multi) this.multi.log(`${message}\n`);
    else this.write(`${message}\n`);
  }

  /** The handler a training run's onProgress gets. */
  readonly onProgress = (e: CliEvent): void => {
    if (this.mode === 'none') return;
    if (this.mode === 'json') {
      this.write(
        `${JSON.stringify(e.type === 'step' || e.type === 'start' || e.type === 'eval' ? { label: this.label, ...e } : e)}\n`,
      );
      return;
    }
    switch (e.type) {
      case 'start':
        this.info(
          `[${this.label}] ${e.run} run: ${e.steps} steps, ${e.trainQueries} ${e.run === 'pretrain' ? 'passages' : 'training queries'}, ${e.parameters.toLocaleString('en-US')} parameters, backend ${e.backend}` +
            (e.worldSize > 1 ? `, ${e.worldSize} ranks` : '') +
            (e.resumedFrom ? `, resumed at step ${e.step} from ${e.resumedFrom}` : ''),
        );
        this.startBar(`${this.label}`, e.steps, e.step, 'steps');
        return;
      case 'step': {
        const payload = {
          speed: e.stepsPerSecond.toFixed(2),
          etaText: formatDuration(e.etaSeconds),
          loss: formatLoss(e.loss, e.parts),
          lr: e.lr.toExponential(1),
          grad: e.gradNorm.toFixed(2),
        };
        if (this.mode === 'bars') this.bars.get(this.label)?.update(e.step, payload);
        else if (this.due(this.label, e.step, e.steps))
          this.write(
            `[${this.label}] step ${e.step}/${e.steps}  ${payload.speed} steps/s  ETA ${payload.etaText}  loss ${payload.loss}  lr ${payload.lr}  |g| ${payload.grad}\n`,
          );
        return;
      }
      case 'eval':
        this.info(
          `[${this.label}] eval at step ${e.step} on ${e.queries} ${e.split} queries: MRR@10 ${e.mrr10.toFixed(4)}  nDCG@10 ${e.ndcg10.toFixed(4)}`,
        );
        return;
      case 'checkpoint':
        if (this.mode === 'lines') this.write(`[${this.label}] checkpoint ${e.dir}\n`);
        return;
      case 'teacherScores':
        this.task({ type: 'task', label: 'teacher scores', done: e.done, total: e.total, unit: 'pairs' });
        return;
      case 'teacherScoresReady':
        this.endBar('teacher scores');
        if (!e.computed && this.scoreFiles.has(e.file)) return; // said once is enough
        this.scoreFiles.add(e.file);
        this.info(
          `teacher scores: ${e.pairs} pairs ${e.computed ? 'computed and cached in' : 'read from the cache'} ${e.file}`,
        );
        return;
      case 'notice':
        this.info(`[${this.label}] ${e.message}`);
        return;
      case 'done':
        this.endBar(this.label);
        this.info(
          `[${this.label}] done: model in ${e.modelDir}` +
            (e.skippedSteps ? ` (${e.skippedSteps} non-finite steps skipped)` : ''),
        );
        return;
      case 'task':
        this.task(e);
        return;
    }
  };

  private task(e: TaskEvent): void {
    if (this.mode === 'bars') {
      if (!this.bars.has(e.label)) this.startBar(e.label, e.total, 0, e.unit);
      this.bars.get(e.label)!.update(e.done);
      if (e.done >= e.total) this.endBar(e.label);
    } else if (this.due(e.label, e.done, e.total)) this.write(`[${e.label}] ${e.done}/${e.total} ${e.unit}\n`);
  }

  private startBar(key: string, total: number, start: number, unit: string): void {
    if (this.mode !== 'bars') return;
    this.endBar(key);
    this.multi ??= new MultiBar({
      stream: this.stream,
      hideCursor: true,
      clearOnComplete: false,
      autopadding: true,
      etaBuffer: 20,
      linewrap: false,
      format: (options, params, payload) => {
        const bar = `${'█'.repeat(Math.round(params.progress * 24))}${'░'.repeat(24 - Math.round(params.progress * 24))}`;
        const head = `${payload.key} ${bar} ${params.value}/${params.total} ${payload.unit}`;
        if (payload.unit !== 'steps') {
          const eta =
            params.value > 0
              ? ((Date.now() - params.startTime) / 1000 / params.value) * (params.total - params.value)
              : NaN;
          return `${head} | ETA ${formatDuration(eta)}`;
        }
        if (payload.speed == null) return head;
        return `${head} | ${payload.speed} steps/s | ETA ${payload.etaText} | loss ${payload.loss} | lr ${payload.lr} | |g| ${payload.grad}`;
      },
    });
    this.bars.set(key, this.multi.create(total, start, { key, unit }));
  }

  private endBar(key: string): void {
    const bar = this.bars.get(key);
    if (!bar || !this.multi) return;
    bar.stop();
    this.multi.remove(bar);
    this.bars.delete(key);
    if (this.bars.size === 0) {
      this.multi.stop();
      this.multi = null;
    }
  }

  /** lines mode: print the first, the last, ~20 in between, and at least one every 15 s. */
  private due(key: string, value: number, total: number): boolean {
    const now = Date.now();
    const last = this.lastLine.get(key);
    const every = Math.max(1, Math.ceil(total / 20));
    if (last == null || value >= total || value % every === 0 || now - last > 15000) {
      this.lastLine.set(key, now);
      if (value >= total) this.lastLine.delete(key);
      return true;
    }
    return false;
  }

  /** Stops any bar still running (call before printing results or on an error). */
  close(): void {
    for (const key of [...this.bars.keys()]) this.endBar(key);
    this.multi?.stop();
    this.multi = null;
  }

  private write(s: string): void {
    this.stream.write(s);
  }
}
