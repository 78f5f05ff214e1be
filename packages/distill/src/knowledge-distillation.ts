import * as tf from '@tensorflow/tfjs-core';
import {
  ConfigError,
  TensorpressError,
  createRng,
  defineController,
  didYouMean,
  entryPaths,
  parseWithSchema,
  softmaxCrossEntropy,
  type AlgorithmDefinition,
  type CompressedModel,
  type CompressionBuilder,
  type CompressionScheduler,
  type EntryLocation,
  type Executor,
  type Graph,
  type Json,
  type LossContext,
} from '@tensorpress/core-tensor';
import { ALGORITHM, VERSION, knowledgeDistillationSchema, type KnowledgeDistillationParams } from './config.js';
import { base64ToF32, f32ToBase64 } from './internal/f32-base64.js';
import { Teacher, checkTeacherOutputs, probeInput } from './internal/teacher.js';
import { distillationTerm, hintLoss } from './losses.js';
import type { TeacherOutputs } from './teacher-outputs.js';

/**
 * Builders' priority: after pruning (100), sparsity (200), binarization (250) and quantization
 * (300), so a hint sees the student's activation as the compressed model computes it.
 */
export const DISTILLATION_PRIORITY = 400;

/** What {@link knowledgeDistillation} accepts: every parameter optional; the teacher may be a loaded graph. */
export interface KnowledgeDistillationOptions extends Partial<Omit<KnowledgeDistillationParams, 'teacher' | 'hints'>> {
  /** A loaded teacher graph, or a model spec to load later (see {@link DistillationBuilder.setTeacher}). */
  teacher?: Graph | string;
  hints?: readonly { student: string; teacher?: string; weight?: number }[];
  /**
   * The teacher's outputs on the training data, computed once by `precomputeTeacherOutputs` from
   * the same teacher graph (`teacher`, or the graph `compress` is given when none is named). A batch
   * whose rows are all found takes them instead of a teacher run; any other runs the teacher. Not
   * with hints (they need the teacher's features) or self-distillation (that teacher changes).
   */
  teacherOutputs?: TeacherOutputs;
}

/** The builder of `knowledge_distillation`; a named teacher spec is loaded by the caller and handed over. */
export interface DistillationBuilder extends CompressionBuilder {
  /** The teacher's model spec from the config, when one was named and not yet loaded. */
  readonly teacherSource: string | undefined;
  /** Hands over the loaded teacher graph (the CLI loads `teacherSource` with its model loaders). */
  setTeacher(graph: Graph): void;
}

/** One hint at run time. */
interface HintRuntime {
  readonly student: string;
  readonly teacher: string;
  /** The teacher node's first output (the value the teacher run returns). */
  teacherValue: string;
  readonly weight: number;
  /** The student's feature of the last train-mode run (kept past the executor's tidy), or undefined. */
  captured: tf.Tensor | undefined;
  adapter: tf.Variable | undefined;
  studentChannels: number;
  teacherChannels: number;
}

type TeacherKind = 'original' | 'named' | 'self-snapshot' | 'self-ema';

class DistillationScheduler implements CompressionScheduler {
  epoch = 0;
  stepInEpoch = 0;
  constructor(
    private readonly onStep: () => void,
    private readonly onEpoch: (finished: number) => void,
  ) {}
  step(): void {
    this.stepInEpoch++;
    this.onStep();
  }
  epochStep(): void {
    this.epoch++;
    this.stepInEpoch = 0;
    this.onEpoch(this.epoch);
  }
}

class DistillationController {
  readonly scheduler: DistillationScheduler;
  private active: boolean;
  private readonly outputName: string;
  /** Batches whose teacher outputs came from {@link teacherOutputs}, and batches that ran the teacher. */
  private precomputedBatches = 0;
  private teacherRuns = 0;

  constructor(
    readonly params: KnowledgeDistillationParams,
    readonly kind: TeacherKind,
    readonly model: CompressedModel,
    readonly teacher: Teacher,
    readonly hints: HintRuntime[],
    private readonly teacherOutputs: TeacherOutputs | undefined,
  ) {
    this.outputName = teacher.graph.outputs[0]!;
    const self = params.selfDistillation;
    this.active = self?.mode !== 'snapshot';
    this.scheduler = new DistillationScheduler(
      () => {
        if (self?.mode === 'ema') this.emaUpdate(self.decay);
      },
      (finished) => {
        if (self?.mode === 'snapshot' && finished === self.epoch) {
          this.teacher.executor.loadParams(this.model.executor.snapshot());
          this.active = true;
        }
      },
    );
  }

  /** teacher ← decay·teacher + (1 − decay)·student, for every float parameter (BN statistics included). */
  private emaUpdate(decay: number): void {
    const student = this.model.executor.variables();
    tf.tidy(() => {
      for (const [name, t] of this.teacher.executor.variables()) {
        const s = student.get(name);
        if (s) t.assign(tf.add(tf.mul(t, decay), tf.mul(s, 1 - decay)));
      }
    });
  }

  /** Called by the student's post hook at a hint node: keeps the train-mode feature for {@link loss}. */
  capture(hint: HintRuntime, x: tf.Tensor, training: boolean): tf.Tensor {
    if (!training) return x;
    hint.captured?.dispose();
    hint.captured = tf.keep(x);
    return x;
  }

  loss(ctx: LossContext): tf.Scalar {
    if (!this.active) return tf.scalar(0);
    const student = ctx.outputs[0];
    if (!student) throw new TensorpressError('INPUT_INVALID', 'knowledge_distillation: the loss context has no model output');
    const n = ctx.inputs.shape[0];
    return tf.tidy(() => {
      const found = this.teacherOutputs?.lookup(ctx.inputs);
      if (found) this.precomputedBatches++;
      else this.teacherRuns++;
      const teacherOut = found ? [found] : this.teacher.run(ctx.inputs, [this.outputName, ...this.hints.map((h) => h.teacherValue)]);
      const p = this.params;
      const d = distillationTerm(student, teacherOut[0]!, { temperature: p.temperature, loss: p.loss });
      // The loop (core fit) adds CE(student, labels) with weight 1; this term turns the sum into
      // (1 − α)·CE + α·D without a change to the loop.
      let total: tf.Scalar = tf.mul(p.alpha, tf.sub(d, softmaxCrossEntropy(student, ctx.labels)));
      this.hints.forEach((h, i) => {
        const f = h.captured;
        if (!f || f.isDisposed || f.shape[0] !== n) {
          throw new TensorpressError(
            'INPUT_INVALID',
            `knowledge_distillation: no train-mode feature of hint node "${h.student}" for this batch; call loss() right after the executor's train-mode run on ctx.inputs (core fit does)`,
            { node: h.student },
          );
        }
        total = tf.add(total, tf.mul(h.weight, hintLoss(f, teacherOut[i + 1]!, h.adapter as tf.Tensor2D | undefined)));
      });
      return total;
    });
  }

  trainableVariables(): tf.Variable[] {
    return this.hints.flatMap((h) => (h.adapter ? [h.adapter] : []));
  }

  statistics(): ReturnType<ReturnType<typeof defineController>['statistics']> {
    const p = this.params;
    return {
      algorithm: ALGORITHM,
      layers: this.hints.map((h) => ({
        node: h.student,
        op: this.model.graph.node(h.student)?.op ?? '?',
        teacherNode: h.teacher,
        weight: h.weight,
        adapter: h.adapter ? `${h.studentChannels}→${h.teacherChannels}` : 'none',
      })),
      total: {
        teacher: this.kind,
        teacherParams: this.teacher.graph.params.reduce((a, q) => a + q.data.length, 0),
        temperature: p.temperature,
        alpha: p.alpha,
        loss: p.loss,
        active: this.active,
        ...(this.teacherOutputs ? { precomputedBatches: this.precomputedBatches, teacherRuns: this.teacherRuns } : {}),
      },
      skipped: [],
    };
  }

  state(): Json {
    const out: Record<string, Json> = { active: this.active, epoch: this.scheduler.epoch, stepInEpoch: this.scheduler.stepInEpoch };
    // A self-distilling student's teacher is trained state: a resumed run needs its weights.
    if (this.kind === 'self-ema' || this.kind === 'self-snapshot') {
      const w: Record<string, Json> = {};
      for (const [name, v] of this.teacher.executor.variables()) w[name] = f32ToBase64(v.dataSync() as Float32Array);
      out['teacherWeights'] = w;
    }
    return out;
  }

  loadState(state: Json): void {
    const s = state as Record<string, Json> | null;
    if (!s || typeof s !== 'object' || Array.isArray(s) || typeof s['active'] !== 'boolean') {
      throw new TensorpressError('STATE_INVALID', `${ALGORITHM}: not a distillation state: expected { active: boolean, ... }`);
    }
    this.active = s['active'];
    this.scheduler.epoch = Number(s['epoch'] ?? 0);
    this.scheduler.stepInEpoch = Number(s['stepInEpoch'] ?? 0);
    const w = s['teacherWeights'];
    if (w && typeof w === 'object' && !Array.isArray(w)) {
      const map = new Map<string, Float32Array>();
      for (const [k, v] of Object.entries(w)) if (typeof v === 'string') map.set(k, base64ToF32(v));
      this.teacher.executor.loadParams(map);
    }
  }

  dispose(): void {
    for (const h of this.hints) {
      h.captured?.dispose();
      h.captured = undefined;
      h.adapter?.dispose();
      h.adapter = undefined;
    }
    this.teacher.dispose();
  }
}

function nodeError(path: string, who: 'student' | 'teacher', name: string, graph: Graph): ConfigError {
  return new ConfigError(path, `the ${who} has no node "${name}"${didYouMean(name, graph.nodes.map((n) => n.name))}`, { node: name, model: who });
}

/** Creates hint adapters from the channel counts seen on a probe batch; checks the leading dimensions agree. */
function setUpHints(student: Executor, teacher: Teacher, hints: HintRuntime[], hintsPath: string, seed: number): void {
  if (hints.length === 0) return;
  const x = probeInput(student.graph, 2, hintsPath);
  try {
    const s = student.run(x, { training: false, bypassHooks: true, outputs: hints.map((h) => student.graph.node(h.student)!.outputs[0]!) });
    const t = teacher.run(x, hints.map((h) => h.teacherValue));
    const ss = s.map((v) => v.shape);
    const ts = t.map((v) => v.shape);
    tf.dispose([...s, ...t]);
    const rng = createRng(seed);
    hints.forEach((h, i) => {
      const a = ss[i]!;
      const b = ts[i]!;
      if (a.length !== b.length || a.slice(0, -1).some((d, k) => d !== b[k])) {
        throw new ConfigError(
          `${hintsPath}[${i}]`,
          `student node "${h.student}" gives [${a.join(', ')}] and teacher node "${h.teacher}" gives [${b.join(', ')}] on a batch of 2: ` +
            'a hint needs the same dimensions except the channels (the last axis), which a 1×1 adapter maps',
          { student: h.student, teacher: h.teacher },
        );
      }
      h.studentChannels = a[a.length - 1]!;
      h.teacherChannels = b[b.length - 1]!;
      if (h.studentChannels !== h.teacherChannels) {
        // Glorot-uniform init of the 1×1 adapter [Cs, Ct].
        const lim = Math.sqrt(6 / (h.studentChannels + h.teacherChannels));
        const w = new Float32Array(h.studentChannels * h.teacherChannels);
        for (let k = 0; k < w.length; k++) w[k] = (rng.next() * 2 - 1) * lim;
        const init = tf.tensor2d(w, [h.studentChannels, h.teacherChannels]);
        h.adapter = tf.variable(init, true, `distill_adapter_${h.student}_${i}`);
        init.dispose();
      }
    });
  } finally {
    x.dispose();
  }
}

function createBuilder(
  params: KnowledgeDistillationParams,
  initialTeacher: Graph | undefined,
  location?: EntryLocation,
  teacherOutputs?: TeacherOutputs,
): DistillationBuilder {
  const paths = entryPaths(location);
  let teacherGraph = initialTeacher;
  let hints: HintRuntime[] = [];
  let controller: DistillationController | undefined;
  const teacherPath = `${paths.params}.teacher`;
  return {
    algorithm: ALGORITHM,
    priority: DISTILLATION_PRIORITY,
    get teacherSource() {
      return teacherGraph === undefined ? params.teacher : undefined;
    },
    setTeacher(graph: Graph) {
      teacherGraph = graph;
    },
    register(graph, layout) {
      controller = undefined;
      hints = params.hints.map((h, i) => {
        if (!graph.node(h.student)) throw nodeError(`${paths.params}.hints[${i}].student`, 'student', h.student, graph);
        return {
          student: h.student,
          teacher: h.teacher ?? h.student,
          teacherValue: '',
          weight: h.weight,
          captured: undefined,
          adapter: undefined,
          studentChannels: 0,
          teacherChannels: 0,
        };
      });
      for (const h of hints) {
        const hint = h;
        layout.addHook({ type: 'post', node: h.student, output: 0 }, (x, ctx) => (controller ? controller.capture(hint, x, ctx.training) : x), {
          algorithm: ALGORITHM,
          priority: DISTILLATION_PRIORITY,
          id: `hint:${h.student}`,
        });
      }
    },
    build(model) {
      const self = params.selfDistillation;
      let kind: TeacherKind;
      let source: Graph;
      if (self) {
        kind = self.mode === 'ema' ? 'self-ema' : 'self-snapshot';
        source = model.executor.snapshot();
      } else if (teacherGraph) {
        kind = params.teacher !== undefined || initialTeacher ? 'named' : 'original';
        source = teacherGraph;
      } else if (params.teacher !== undefined) {
        throw new ConfigError(
          teacherPath,
          `the teacher "${params.teacher}" is named but was not loaded: load it (the tensorpress CLI does) and pass the graph with setTeacher() before compress()`,
          { teacher: params.teacher },
        );
      } else {
        kind = 'original';
        source = model.original;
      }
      if (teacherOutputs) {
        const refuse = self ? 'selfDistillation' : hints.length > 0 ? 'hints' : undefined;
        if (refuse) {
          throw new ConfigError(
            `${paths.params}.${refuse}`,
            refuse === 'hints'
              ? 'precomputed teacher outputs hold the teacher\'s logits only; hints need its features: drop teacherOutputs or the hints'
              : 'precomputed teacher outputs need a fixed teacher; a self-distilling teacher changes as the student trains',
          );
        }
        if (teacherOutputs.teacher !== source) {
          throw new ConfigError(
            teacherPath,
            `the precomputed teacher outputs were computed from another graph than this run's teacher (${kind === 'original' ? 'the FP32 original' : 'the named teacher'}); compute them from the teacher itself`,
          );
        }
      }
      const teacher = new Teacher(source);
      try {
        if (kind !== 'self-ema' && kind !== 'self-snapshot') checkTeacherOutputs(model.executor, teacher, kind === 'original' ? paths.params : teacherPath);
        hints.forEach((h, i) => {
          const node = source.node(h.teacher);
          if (!node) throw nodeError(`${paths.params}.hints[${i}].teacher`, 'teacher', h.teacher, source);
          h.teacherValue = node.outputs[0]!;
        });
        setUpHints(model.executor, teacher, hints, `${paths.params}.hints`, 0);
      } catch (e) {
        for (const h of hints) h.adapter?.dispose();
        teacher.dispose();
        throw e;
      }
      const c = new DistillationController(params, kind, model, teacher, hints, teacherOutputs);
      controller = c;
      return defineController(ALGORITHM, {
        scheduler: c.scheduler,
        loss: (ctx) => c.loss(ctx),
        trainableVariables: () => c.trainableVariables(),
        statistics: () => c.statistics(),
        state: () => c.state(),
        loadState: (s) => c.loadState(s),
        // Distillation leaves nothing in the deployable graph: the adapters and the teacher go.
        strip: (g) => g,
        dispose: () => {
          c.dispose();
          if (controller === c) controller = undefined;
        },
      });
    },
  };
}

/**
 * Knowledge distillation as a compression loss: a builder for `compress`, alone or stacked with
 * pruning, quantization or any other technique. The teacher is `options.teacher` (a graph), or
 * the graph `compress` was given (the FP32 original) when none is named, or the student itself
 * with `selfDistillation`. Options are validated at once: `temperature <= 0` is a ConfigError
 * naming `$.temperature`, `alpha` outside [0, 1] one naming `$.alpha`.
 *
 * The controller's loss is `α·(D − CE) + Σ hints`, so that with the hard-label cross-entropy the
 * training loop adds (core `fit` does) the objective is `(1 − α)·CE + α·D + Σ hints`.
 */
export function knowledgeDistillation(options: KnowledgeDistillationOptions = {}): DistillationBuilder {
  const { teacher, teacherOutputs, ...rest } = options;
  const params = parseWithSchema(knowledgeDistillationSchema, typeof teacher === 'string' ? { ...rest, teacher } : rest);
  return createBuilder(params, typeof teacher === 'string' ? undefined : teacher, undefined, teacherOutputs);
}

/** The `knowledge_distillation` algorithm for pipeline configs (`parsePipelineConfig` / `createBuilders`). */
export const knowledgeDistillationDefinition: AlgorithmDefinition<KnowledgeDistillationParams> = {
  algorithm: ALGORITHM,
  version: VERSION,
  packageName: '@tensorpress/distill',
  description: 'Knowledge distillation (soft-label KL / logit MSE, hints) from a teacher, the FP32 original or the student itself',
  schema: knowledgeDistillationSchema,
  create: (config, location) => {
    const scoped = config.ignoredScopes.length > 0 ? 'ignoredScopes' : config.targetScopes.length > 0 ? 'targetScopes' : undefined;
    if (scoped) {
      throw new ConfigError(`${entryPaths(location).entry}.${scoped}`, `${ALGORITHM} acts on the whole model's outputs (and the hint nodes it names): scopes do not apply; remove ${scoped}`);
    }
    return createBuilder(config.params, undefined, location);
  },
};

/** True for a builder that names a teacher model still to be loaded (duck-typed, for loaders such as the CLI). */
export function needsTeacher(builder: CompressionBuilder): builder is DistillationBuilder {
  const b = builder as Partial<DistillationBuilder>;
  return typeof b.setTeacher === 'function' && typeof b.teacherSource === 'string';
}
