import { ConfigError, createBuilders, parsePipelineConfig } from '@tensorpress/core-tensor';
import * as distill from '@tensorpress/distill';
import { distillAlgorithms, knowledgeDistillation } from '@tensorpress/distill';
import { errorOf, expectAlgorithmList, looseObjects } from '@tensorpress/test-utils';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

const entry = (params: unknown, extra: Record<string, unknown> = {}): unknown => ({
  compression: [{ algorithm: 'knowledge_distillation', params, ...extra }],
});

function configError(fn: () => unknown): ConfigError {
  const e = errorOf(fn);
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe('distillAlgorithms', () => {
  it('holds the knowledge_distillation definition with a strict zod schema', () => {
    expectAlgorithmList(distill, 'distillAlgorithms', '@tensorpress/distill');
    expect(distillAlgorithms.map((d) => d.algorithm)).toEqual(['knowledge_distillation']);
    for (const d of distillAlgorithms) {
      expect(d.schema).toBeInstanceOf(z.ZodType);
      expect(looseObjects(d.schema)).toEqual([]);
    }
  });
});

describe('knowledgeDistillationSchema', () => {
  it('applies the defaults', () => {
    const c = parsePipelineConfig(entry({}), distillAlgorithms);
    expect(c.compression[0]!.params).toEqual({ temperature: 4, alpha: 0.9, loss: 'kl', hints: [] });
    const h = parsePipelineConfig(entry({ hints: [{ student: 'relu2' }], selfDistillation: { mode: 'ema' } }), distillAlgorithms);
    expect(h.compression[0]!.params).toMatchObject({ hints: [{ student: 'relu2', weight: 1 }], selfDistillation: { mode: 'ema', decay: 0.99 } });
  });

  it('names the JSON path of T <= 0 and of α outside [0, 1]', () => {
    for (const temperature of [0, -2]) {
      const e = configError(() => parsePipelineConfig(entry({ temperature }), distillAlgorithms));
      expect(e.path).toBe('$.compression[0].params.temperature');
      expect(e.code).toBe('CONFIG_INVALID');
    }
    for (const alpha of [-0.5, 1.01]) {
      expect(configError(() => parsePipelineConfig(entry({ alpha }), distillAlgorithms)).path).toBe('$.compression[0].params.alpha');
    }
    expect(configError(() => parsePipelineConfig(entry({ loss: 'l1' }), distillAlgorithms)).path).toBe('$.compression[0].params.loss');
    expect(configError(() => parsePipelineConfig(entry({ hints: [{ student: 'a', adaptor: true }] }), distillAlgorithms)).path).toBe(
      '$.compression[0].params.hints[0].adaptor',
    );
  });

  it('refuses a named teacher together with self-distillation, and scopes', () => {
    const e = configError(() => parsePipelineConfig(entry({ teacher: 'builtin:residualCnn', selfDistillation: { mode: 'snapshot' } }), distillAlgorithms));
    expect(e.path).toBe('$.compression[0].params.teacher');
    const c = parsePipelineConfig(entry({}, { ignoredScopes: ['fc2'] }), distillAlgorithms);
    expect(configError(() => createBuilders(c, distillAlgorithms)).path).toBe('$.compression[0].ignoredScopes');
  });
});

describe('knowledgeDistillation', () => {
  it('validates its options at once, naming the option', () => {
    expect(configError(() => knowledgeDistillation({ temperature: 0 })).path).toBe('$.temperature');
    expect(configError(() => knowledgeDistillation({ alpha: 2 })).path).toBe('$.alpha');
  });

  it('keeps a teacher spec to be loaded, and forgets it once a graph is handed over', () => {
    const c = parsePipelineConfig(entry({ teacher: 'teacher.onnx' }), distillAlgorithms);
    const [b] = createBuilders(c, distillAlgorithms);
    expect(distill.needsTeacher(b!)).toBe(true);
    expect((b as distill.DistillationBuilder).teacherSource).toBe('teacher.onnx');
    expect(distill.needsTeacher(knowledgeDistillation())).toBe(false);
  });
});
