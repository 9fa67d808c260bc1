/** telemetry.istio.io Telemetry. */
import type { ObjectMeta, Telemetry } from './types.js';
import { at, bool, compact, list, nonEmpty, num, struct, type Ctx, type Raw } from './fields.js';
import { exclusiveTargets, policyTargetRef, workloadSelector } from './validate-security.js';

type Providers = { name: string }[] | undefined;

function providers(ctx: Ctx, v: unknown, path: string): Providers {
  return list(ctx, v, path, (x, p) => {
    const r = struct(ctx, x, p, { known: ['name'] }, true);
    return r ? { name: nonEmpty(ctx, r['name'], at(p, 'name'), true) ?? '' } : undefined;
  });
}

export function validateTelemetry(ctx: Ctx, raw: Raw, meta: ObjectMeta, apiVersion: string): Telemetry {
  const spec =
    struct(ctx, raw['spec'], 'spec', { known: ['selector', 'targetRef', 'targetRefs', 'accessLogging', 'metrics', 'tracing'] }) ?? {};
  exclusiveTargets(ctx, spec, ['selector', 'targetRef', 'targetRefs']);
  return {
    apiVersion: apiVersion as Telemetry['apiVersion'],
    kind: 'Telemetry',
    metadata: meta,
    spec: compact({
      selector: workloadSelector(ctx, spec['selector'], 'spec.selector'),
      targetRef: spec['targetRef'] === undefined ? undefined : policyTargetRef(ctx, spec['targetRef'], 'spec.targetRef'),
      targetRefs: list(ctx, spec['targetRefs'], 'spec.targetRefs', (v, p) => policyTargetRef(ctx, v, p)),
      accessLogging: list(ctx, spec['accessLogging'], 'spec.accessLogging', (v, p) => accessLogging(ctx, v, p)),
      metrics: list(ctx, spec['metrics'], 'spec.metrics', (v, p) => metrics(ctx, v, p)),
      tracing: list(ctx, spec['tracing'], 'spec.tracing', (v, p) => tracing(ctx, v, p)),
    }),
  };
}

function accessLogging(ctx: Ctx, v: unknown, path: string): NonNullable<Telemetry['spec']['accessLogging']>[number] | undefined {
  const a = struct(ctx, v, path, { known: ['providers', 'disabled', 'filter'], unsupported: ['match'] }, true);
  if (!a) return undefined;
  const f = struct(ctx, a['filter'], at(path, 'filter'), { known: ['expression'] });
  return compact({
    providers: providers(ctx, a['providers'], at(path, 'providers')),
    disabled: bool(ctx, a['disabled'], at(path, 'disabled')),
    filter: f && { expression: nonEmpty(ctx, f['expression'], at(path, 'filter.expression'), true) ?? '' },
  });
}

function metrics(ctx: Ctx, v: unknown, path: string): NonNullable<Telemetry['spec']['metrics']>[number] | undefined {
  const m = struct(ctx, v, path, { known: ['providers', 'overrides'], unsupported: ['reportingInterval'] }, true);
  if (!m) return undefined;
  return compact({
    providers: providers(ctx, m['providers'], at(path, 'providers')),
    overrides: list(ctx, m['overrides'], at(path, 'overrides'), (x) => x),
  });
}

function tracing(ctx: Ctx, v: unknown, path: string): NonNullable<Telemetry['spec']['tracing']>[number] | undefined {
  const t = struct(
    ctx,
    v,
    path,
    {
      known: ['providers', 'randomSamplingPercentage', 'disableSpanReporting'],
      unsupported: ['customTags', 'match', 'useRequestIdForTraceSampling', 'enableIstioTags'],
    },
    true,
  );
  if (!t) return undefined;
  return compact({
    providers: providers(ctx, t['providers'], at(path, 'providers')),
    randomSamplingPercentage: num(ctx, t['randomSamplingPercentage'], at(path, 'randomSamplingPercentage'), { min: 0, max: 100 }),
    disableSpanReporting: bool(ctx, t['disableSpanReporting'], at(path, 'disableSpanReporting')),
  });
}
