package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/hubkit/iothub"
)

// scripted is an Authorizer that hands out its tokens in order, an empty
// one meaning a failure.
type scripted struct {
	tokens []string
	next   int
}

func (s *scripted) Authorization(context.Context) (string, error) {
	tok := s.tokens[s.next]
	s.next++
	if tok == "" {
		return "", errors.New("no token")
	}
	return tok, nil
}

// TestRenewalWatch feeds the renewal counter the tokens attempts send, in
// orders calls in flight together produce: a token seen for the first
// time counts once, the one before it (sent by a caller that read it just
// before a renewal) does not count again, and a failure counts nothing.
func TestRenewalWatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tokens []string
		want   int64
	}{
		{"one token", []string{"A", "A", "A"}, 1},
		{"renewals", []string{"A", "B", "B", "C"}, 3},
		{"the previous token after a renewal", []string{"A", "B", "A", "B", "A", "C", "B", "C"}, 3},
		{"failures", []string{"", "A", "", "A", "B", ""}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reader := sdkmetric.NewManualReader()
			tel, err := newTelemetry("hub.azure-devices.net", "https://hub.azure-devices.net", &iothub.ClientOptions{
				MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
			})
			if err != nil {
				t.Fatal(err)
			}
			a := watchRenewals(&scripted{tokens: tt.tokens}, tel)
			for range tt.tokens {
				_, _ = a.Authorization(t.Context())
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(t.Context(), &rm); err != nil {
				t.Fatal(err)
			}
			type point struct {
				Kind, Hub string
				Value     int64
			}
			var got []point
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != "iothub.auth.token.renewals" {
						continue
					}
					for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
						kind, _ := p.Attributes.Value(AttrAuthKind)
						hub, _ := p.Attributes.Value(AttrHub)
						got = append(got, point{kind.AsString(), hub.AsString(), p.Value})
					}
				}
			}
			want := []point{{"custom", "hub.azure-devices.net", tt.want}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("renewals (-want +got):\n%s", diff)
			}
		})
	}
}
