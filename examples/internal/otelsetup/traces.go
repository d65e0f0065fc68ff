package otelsetup

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// traceClient is the otlptrace.Client that posts OTLP/HTTP protobuf; the
// otlptrace.Exporter around it converts the spans.
type traceClient struct{ s *sender }

var _ otlptrace.Client = (*traceClient)(nil)

// Start has nothing to open: connections are made by the first upload.
func (c *traceClient) Start(context.Context) error { return nil }

// Stop closes idle connections.
func (c *traceClient) Stop(ctx context.Context) error {
	c.s.client.CloseIdleConnections()
	return ctx.Err()
}

// UploadTraces posts spans as an ExportTraceServiceRequest.
func (c *traceClient) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	body, err := frame(spans)
	if err != nil {
		return fmt.Errorf("OTLP trace export: %w", err)
	}
	return c.s.send(ctx, body)
}
