package service

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/hubkit/iothub/internal/pipeline"
)

// Attribute keys of a fan-out's span, beside the pipeline's.
const (
	attrConcurrency = attribute.Key("iothub.fanout.concurrency")
	attrTargets     = attribute.Key("iothub.fanout.targets")
)

// outcomeKeys are the span attributes of the fan-out's counts, in the
// order of outcomes.
var outcomeKeys = [...]attribute.Key{"iothub.fanout.succeeded", "iothub.fanout.device_error", "iothub.fanout.not_delivered", "iothub.fanout.unknown"}

// outcomes numbers the outcomes for the fan-out's counts.
var outcomes = [...]Outcome{OutcomeSucceeded, OutcomeDeviceError, OutcomeNotDelivered, OutcomeUnknown}

func outcomeIndex(o Outcome) int {
	for i, x := range outcomes {
		if x == o {
			return i
		}
	}
	return -1
}

// fanOutMetrics are a client's fan-out instruments and the fan-outs they
// observe. Nil when the client has no MeterProvider.
type fanOutMetrics struct {
	meter    metric.Meter
	hub      attribute.KeyValue
	rate     metric.Float64ObservableGauge
	accepted metric.Float64ObservableGauge
	window   metric.Int64ObservableGauge
	active   metric.Int64ObservableGauge
	targets  metric.Int64Counter

	mu      sync.Mutex
	running map[*FanOut]struct{}
	reg     metric.Registration // registered while a fan-out runs
}

// newFanOutMetrics creates the fan-out instruments of a client whose
// pipeline has a meter; it returns nil otherwise.
func newFanOutMetrics(p *pipeline.Pipeline) (*fanOutMetrics, error) {
	meter := p.Meter()
	if meter == nil {
		return nil, nil
	}
	m := &fanOutMetrics{meter: meter, hub: p.HubAttribute(), running: make(map[*FanOut]struct{})}
	var errs [5]error
	m.rate, errs[0] = meter.Float64ObservableGauge("iothub.fanout.rate", metric.WithUnit("{call}/s"),
		metric.WithDescription("Pacing rate of the running fan-outs, summed; unpaced fan-outs count 0."))
	m.accepted, errs[1] = meter.Float64ObservableGauge("iothub.fanout.accepted_rate", metric.WithUnit("{call}/s"),
		metric.WithDescription("Calls per second IoT Hub accepted from the running fan-outs over the last second."))
	m.window, errs[2] = meter.Int64ObservableGauge("iothub.fanout.window", metric.WithUnit("{call}"),
		metric.WithDescription("Calls in flight of the running fan-outs."))
	m.active, errs[3] = meter.Int64ObservableGauge("iothub.fanout.active", metric.WithUnit("{fanout}"),
		metric.WithDescription("Fan-outs running."))
	m.targets, errs[4] = meter.Int64Counter("iothub.fanout.targets", metric.WithUnit("{target}"),
		metric.WithDescription("Fan-out targets with a result, by outcome, those never invoked included."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return m, nil
}

// add starts observing f, registering the gauges' callback with the first
// running fan-out.
func (m *fanOutMetrics) add(f *FanOut) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running[f] = struct{}{}
	if m.reg == nil {
		m.reg, _ = m.meter.RegisterCallback(m.observe, m.rate, m.accepted, m.window, m.active)
	}
}

// remove stops observing f, and unregisters the callback after the last
// fan-out, so that a client left unused holds nothing in the provider.
func (m *fanOutMetrics) remove(f *FanOut) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.running, f)
	if len(m.running) == 0 && m.reg != nil {
		_ = m.reg.Unregister()
		m.reg = nil
	}
}

func (m *fanOutMetrics) observe(_ context.Context, o metric.Observer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	var rate, accepted float64
	var window int64
	for f := range m.running {
		if r := f.ctl.State(now).Rate; !math.IsInf(r, 1) {
			rate += r
		}
		accepted += f.ctl.AcceptedRate(now)
		for i := range f.meter.inFlight {
			if f.meter.inFlight[i].Load() != 0 {
				window++
			}
		}
	}
	attrs := metric.WithAttributes(m.hub)
	o.ObserveFloat64(m.rate, rate, attrs)
	o.ObserveFloat64(m.accepted, accepted, attrs)
	o.ObserveInt64(m.window, window, attrs)
	o.ObserveInt64(m.active, int64(len(m.running)), attrs)
	return nil
}

// fanOutTelemetry is one fan-out's span and counts; nil when the client
// has neither a TracerProvider nor a MeterProvider.
type fanOutTelemetry struct {
	span    trace.Span // nil when not traced
	metrics *fanOutMetrics
	method  attribute.KeyValue
	counts  [len(outcomes)]atomic.Int64
}

// startFanOutTelemetry opens the fan-out's span; the returned context
// carries it, so that every invocation of the fan-out is its child.
func (c *Client) startFanOutTelemetry(ctx context.Context, params MethodParams[any], o FanOutOptions) (context.Context, *fanOutTelemetry) {
	tracer := c.p.Tracer()
	if tracer == nil && c.fan == nil {
		return ctx, nil
	}
	t := &fanOutTelemetry{metrics: c.fan, method: pipeline.AttrMethodName.String(params.Name)}
	if tracer != nil {
		ctx, t.span = tracer.Start(ctx, "FanOut", trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
			pipeline.AttrAzNamespace.String(pipeline.Namespace),
			c.p.HubAttribute(),
			pipeline.AttrOperation.String("FanOut"),
			t.method,
			attrConcurrency.Int(o.Concurrency),
		))
	}
	return ctx, t
}

// begin starts observing the running fan-out.
func (t *fanOutTelemetry) begin(f *FanOut) {
	if t != nil && t.metrics != nil {
		t.metrics.add(f)
	}
}

// count records one target's result.
func (t *fanOutTelemetry) count(res *Result) {
	if t == nil {
		return
	}
	if i := outcomeIndex(res.Outcome); i >= 0 {
		t.counts[i].Add(1)
	}
	if t.metrics != nil {
		t.metrics.targets.Add(context.Background(), 1, metric.WithAttributes(t.metrics.hub, t.method, pipeline.AttrOutcome.String(string(res.Outcome))))
	}
}

// end closes the fan-out's span once every target has its result.
func (t *fanOutTelemetry) end(f *FanOut) {
	if t == nil {
		return
	}
	if t.metrics != nil {
		t.metrics.remove(f)
	}
	if t.span == nil {
		return
	}
	var total int64
	attrs := make([]attribute.KeyValue, 0, len(outcomes)+1)
	for i := range outcomes {
		n := t.counts[i].Load()
		total += n
		attrs = append(attrs, outcomeKeys[i].Int64(n))
	}
	attrs = append(attrs, attrTargets.Int64(total))
	t.span.SetAttributes(attrs...)
	if err := f.Err(); err != nil {
		t.span.SetStatus(codes.Error, err.Error())
	}
	t.span.End()
}
