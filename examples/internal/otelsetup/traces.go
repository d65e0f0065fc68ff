package otelsetup

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// spanExporter is an sdktrace.SpanExporter that posts OTLP/HTTP protobuf.
type spanExporter struct {
	s *sender
}

var _ sdktrace.SpanExporter = (*spanExporter)(nil)

// ExportSpans posts spans as an ExportTraceServiceRequest; no spans, no
// request.
func (e *spanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.s.live(); err != nil {
		return err
	}
	body := traceRequest(spans)
	if len(body) == 0 {
		return nil
	}
	return e.s.send(ctx, body)
}

// Shutdown stops later exports and closes idle connections.
func (e *spanExporter) Shutdown(ctx context.Context) error {
	e.s.stop()
	return ctx.Err()
}

// OTLP Span.flags: the low 8 bits are the W3C trace flags; these say that
// whether the parent (or a link's span) is remote is known, and that it is.
const (
	spanFlagsHasIsRemote = 0x100
	spanFlagsIsRemote    = 0x200
)

// resourceGroup is the spans of one resource, by scope, in the order they
// came.
type resourceGroup struct {
	res    *resource.Resource
	scopes []*scopeGroup
}

type scopeGroup struct {
	scope instrumentation.Scope
	spans []sdktrace.ReadOnlySpan
}

// traceRequest is the ExportTraceServiceRequest {repeated ResourceSpans
// resource_spans = 1} of spans, grouped by resource and scope as the
// OpenTelemetry exporters group them (resources and scopes in the order
// they first come); nil for no spans.
func traceRequest(spans []sdktrace.ReadOnlySpan) []byte {
	type scopeKey struct {
		res   attribute.Distinct
		scope instrumentation.Scope
	}
	var groups []*resourceGroup
	byRes := map[attribute.Distinct]*resourceGroup{}
	byScope := map[scopeKey]*scopeGroup{}
	for _, s := range spans {
		if s == nil {
			continue
		}
		rk := s.Resource().Equivalent()
		sk := scopeKey{rk, s.InstrumentationScope()}
		sg := byScope[sk]
		if sg == nil {
			sg = &scopeGroup{scope: sk.scope}
			byScope[sk] = sg
			rg := byRes[rk]
			if rg == nil {
				rg = &resourceGroup{res: s.Resource()}
				byRes[rk] = rg
				groups = append(groups, rg)
			}
			rg.scopes = append(rg.scopes, sg)
		}
		sg.spans = append(sg.spans, s)
	}
	var b []byte
	for _, rg := range groups {
		b = appendResourceSpans(b, rg)
	}
	return b
}

// appendResourceSpans writes field 1 of the request, ResourceSpans
// {Resource resource = 1; repeated ScopeSpans scope_spans = 2; string
// schema_url = 3}; ScopeSpans is {InstrumentationScope scope = 1; repeated
// Span spans = 2; string schema_url = 3}, its scope left out when it is
// the zero scope.
func appendResourceSpans(b []byte, rg *resourceGroup) []byte {
	b, at := beginMessage(b, 1)
	b = appendResource(b, 1, rg.res)
	for _, sg := range rg.scopes {
		var sat int
		b, sat = beginMessage(b, 2)
		if sg.scope != (instrumentation.Scope{}) {
			b = appendScope(b, 1, sg.scope.Name, sg.scope.Version, sg.scope.Attributes)
		}
		for _, s := range sg.spans {
			b = appendSpan(b, 2, s)
		}
		b = appendString(b, 3, sg.scope.SchemaURL)
		b = endMessage(b, sat)
	}
	if rg.res != nil {
		b = appendString(b, 3, rg.res.SchemaURL())
	}
	return endMessage(b, at)
}

// appendSpan writes the Span field num.
func appendSpan(b []byte, num fieldNum, s sdktrace.ReadOnlySpan) []byte {
	b, at := beginMessage(b, num)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, 1, tid[:])
	b = appendBytes(b, 2, sid[:])
	b = appendString(b, 3, sc.TraceState().String())
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		b = appendBytes(b, 4, psid[:])
	}
	b = appendString(b, 5, s.Name())
	b = appendVarint(b, 6, spanKind(s.SpanKind()))
	b = appendFixed64(b, 7, unixNano(s.StartTime()))
	b = appendFixed64(b, 8, unixNano(s.EndTime()))
	b = appendKeyValues(b, 9, s.Attributes())
	b = appendVarint(b, 10, clampUint32(s.DroppedAttributes()))
	for _, e := range s.Events() {
		// Span.Event {fixed64 time_unix_nano = 1; string name = 2;
		// repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4}
		var eat int
		b, eat = beginMessage(b, 11)
		b = appendFixed64(b, 1, unixNano(e.Time))
		b = appendString(b, 2, e.Name)
		b = appendKeyValues(b, 3, e.Attributes)
		b = appendVarint(b, 4, clampUint32(e.DroppedAttributeCount))
		b = endMessage(b, eat)
	}
	b = appendVarint(b, 12, clampUint32(s.DroppedEvents()))
	for _, l := range s.Links() {
		// Span.Link {bytes trace_id = 1; bytes span_id = 2; string
		// trace_state = 3; repeated KeyValue attributes = 4; uint32
		// dropped_attributes_count = 5; fixed32 flags = 6}
		var lat int
		b, lat = beginMessage(b, 13)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = appendBytes(b, 1, ltid[:])
		b = appendBytes(b, 2, lsid[:])
		b = appendString(b, 3, l.SpanContext.TraceState().String())
		b = appendKeyValues(b, 4, l.Attributes)
		b = appendVarint(b, 5, clampUint32(l.DroppedAttributeCount))
		b = appendFixed32(b, 6, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		b = endMessage(b, lat)
	}
	b = appendVarint(b, 14, clampUint32(s.DroppedLinks()))
	// Status {string message = 2; StatusCode code = 3}, always set.
	var stat int
	b, stat = beginMessage(b, 15)
	st := s.Status()
	b = appendString(b, 2, st.Description)
	b = appendVarint(b, 3, statusCode(st.Code))
	b = endMessage(b, stat)
	b = appendFixed32(b, 16, spanFlags(sc.TraceFlags(), parent))
	return endMessage(b, at)
}

// spanFlags is OTLP's flags of a span (or link) with trace flags tf whose
// parent (or linked span) is parent.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | spanFlagsHasIsRemote
	if parent.IsRemote() {
		f |= spanFlagsIsRemote
	}
	return f
}

// spanKind is OTLP's SpanKind: UNSPECIFIED 0, INTERNAL 1, SERVER 2, CLIENT
// 3, PRODUCER 4, CONSUMER 5 (the SDK numbers 1 to 5 the same way).
func spanKind(k trace.SpanKind) uint64 {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	}
	return 0
}

// statusCode is OTLP's Status.StatusCode: UNSET 0, OK 1, ERROR 2 (the SDK's
// codes.Code has Error 1 and Ok 2).
func statusCode(c codes.Code) uint64 {
	switch c {
	case codes.Ok:
		return 1
	case codes.Error:
		return 2
	}
	return 0
}
