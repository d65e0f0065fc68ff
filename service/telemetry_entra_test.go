package service_test

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/internal/testkit/httpmock"
	"github.com/hubkit/iothub/internal/testkit/syncbuf"
	"github.com/hubkit/iothub/service"
)

// telemetryText returns every string the recorded spans and metrics hold:
// span names, status descriptions, attribute keys and values, event names
// and attributes; metric names, descriptions and data point attributes.
func (o *observed) telemetryText(t *testing.T) string {
	t.Helper()
	var out []string
	for _, s := range o.spans.Ended() {
		out = append(out, s.Name(), s.Status().Description)
		out = append(out, setStrings(s.Attributes())...)
		for _, e := range s.Events() {
			out = append(out, e.Name)
			out = append(out, setStrings(e.Attributes)...)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out = append(out, m.Name, m.Description)
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out = append(out, setStrings(p.Attributes.ToSlice())...)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out = append(out, setStrings(p.Attributes.ToSlice())...)
				}
			default:
				t.Fatalf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestTelemetryEntraRenewals makes calls with Microsoft Entra tokens that
// live 20 minutes, refreshed 10 minutes before expiry
// (auth.DefaultRefreshBefore), over virtual time: the renewals counter
// says as many tokens as the credential handed out, all of kind entra,
// and no token appears in a span, a metric or a log record.
func TestTelemetryEntraRenewals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		together int           // calls made at once each round
		step     time.Duration // between rounds
		rounds   int
		tokens   int // the credential hands out
	}{
		// Calls at 0, 4, …, 36 min: the token of 0 min is refreshed at
		// 12 min (its refresh time is 10 min), that one at 24 and 36.
		{"one call at a time, in the refresh window", 1, 4 * time.Minute, 10, 4},
		// The same, with one caller refreshing and the others still
		// sending the older token at each renewal.
		{"calls together, in the refresh window", 8, 4 * time.Minute, 10, 4},
		// Each round finds the last token expired.
		{"after expiry", 2, 25 * time.Minute, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				hub := httpmock.New(nil)
				t.Cleanup(hub.Close)
				hub.AddDevice("d1", &httpmock.DeviceOptions{Handler: echo})
				cred := hub.TokenCredential(httpmock.DataContributor, &httpmock.TokenOptions{Lifetime: 20 * time.Minute})
				var logs syncbuf.Buffer
				o := &observed{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
				o.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
				c, err := service.NewClient(hub.HostName(), cred, &iothub.ClientOptions{
					Transport:      hub.RoundTripper(),
					Retry:          iothub.RetryOptions{MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond},
					TracerProvider: o.tp,
					MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader)),
					Logger:         slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				})
				if err != nil {
					t.Fatal(err)
				}
				o.client = c
				params := service.MethodParams[any]{Name: "reboot"}
				for round := range tt.rounds {
					if round > 0 {
						time.Sleep(tt.step)
					}
					var wg sync.WaitGroup
					for range tt.together {
						wg.Go(func() {
							if _, err := c.InvokeDeviceMethod(t.Context(), "d1", params, nil); err != nil {
								t.Errorf("round %d: %v", round, err)
							}
						})
					}
					wg.Wait()
				}

				// The tokens the hub received, each told apart.
				sent := sentSecrets(hub)
				distinct := map[string]bool{}
				for _, tok := range sent {
					distinct[tok] = true
				}
				if len(sent) != tt.together*tt.rounds {
					t.Fatalf("the hub received %d bearer tokens, want one per call (%d)", len(sent), tt.together*tt.rounds)
				}
				if cred.Calls() != tt.tokens || len(distinct) != tt.tokens {
					t.Errorf("the credential handed out %d tokens, the hub saw %d; want %d", cred.Calls(), len(distinct), tt.tokens)
				}
				renewals := map[string]float64{}
				for k, v := range o.metrics(t) {
					if strings.HasPrefix(k, "iothub.auth.token.renewals") {
						renewals[k] = v
					}
				}
				want := map[string]float64{"iothub.auth.token.renewals{iothub.auth.kind=entra}": float64(cred.Calls())}
				if diff := cmp.Diff(want, renewals); diff != "" {
					t.Errorf("renewals, want the tokens handed out (-want +got):\n%s", diff)
				}

				all := o.telemetryText(t)
				logged := logs.String()
				if len(o.spans.Ended()) != 2*tt.together*tt.rounds || logged == "" {
					t.Fatalf("%d spans, %d bytes of logs: the test observed too little", len(o.spans.Ended()), len(logged))
				}
				for _, w := range secretWindows(sent) {
					if strings.Contains(all, w) {
						t.Fatalf("a bearer token (window %q) appears in the telemetry", w)
					}
					if strings.Contains(logged, w) {
						t.Fatalf("a bearer token (window %q) appears in the logs", w)
					}
				}
				if strings.Contains(all, "Bearer") || strings.Contains(logged, "Bearer") {
					t.Error("an Authorization value appears in the telemetry or the logs")
				}
			})
		})
	}
}
