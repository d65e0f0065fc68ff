package otelsetup

import (
	"crypto/tls"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestReadSignal reads one signal's settings: the signal's own variable
// wins whole over the general one, and a bad value is an error that names
// the variable but never shows a header value.
func TestReadSignal(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		maps.Copy(m, base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    signalConfig
		wantErr string
	}{
		{name: "nothing set", env: map[string]string{}},
		{name: "defaults", env: base, want: signalConfig{url: "http://c:4318/v1/traces", timeout: 10 * time.Second}},
		{
			name: "headers, timeout, gzip",
			env:  with("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%2Cb%3D%20c,,X-Tenant=t1", "OTEL_EXPORTER_OTLP_TIMEOUT", "2500", "OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
			want: signalConfig{url: "http://c:4318/v1/traces", headers: http.Header{"Api-Key": {"a,b= c"}, "X-Tenant": {"t1"}}, timeout: 2500 * time.Millisecond, gzip: true},
		},
		{
			name: "the signal's own settings win whole",
			env: with("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "c=3",
				"OTEL_EXPORTER_OTLP_TIMEOUT", "1", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "20000",
				"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
			want: signalConfig{url: "http://c:4318/v1/traces", headers: http.Header{"C": {"3"}}, timeout: 20 * time.Second},
		},
		{name: "the general setting without the signal's own", env: with("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "5"), want: signalConfig{url: "http://c:4318/v1/traces", timeout: 10 * time.Second}},
		{name: "a header without =", env: with("OTEL_EXPORTER_OTLP_HEADERS", "ok=1,Authorization Bearer "+secret), wantErr: "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not key=value with a header name for key (the form is key=value,key2=value2)"},
		{name: "a header name that is no token", env: with("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a b="+secret), wantErr: "OTEL_EXPORTER_OTLP_TRACES_HEADERS: entry 1 is not key=value"},
		{name: "a bad percent-encoding", env: with("OTEL_EXPORTER_OTLP_HEADERS", "k="+secret+"%zz"), wantErr: "OTEL_EXPORTER_OTLP_HEADERS: the value of k is not a valid percent-encoded header value"},
		{name: "a newline in a value", env: with("OTEL_EXPORTER_OTLP_HEADERS", "k="+secret+"%0D%0AX: y"), wantErr: "the value of k is not a valid percent-encoded header value"},
		{name: "a timeout that is no number", env: with("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"), wantErr: "OTEL_EXPORTER_OTLP_TIMEOUT=10s: want a positive number of milliseconds"},
		{name: "a zero timeout", env: with("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0"), wantErr: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=0: want a positive number of milliseconds"},
		{name: "an unknown compression", env: with("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"), wantErr: "OTEL_EXPORTER_OTLP_COMPRESSION=zstd is not supported: want gzip or none"},
		{name: "not an http URL", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "localhost:4318?key=" + secret}, wantErr: "the OTLP traces endpoint is not an http:// or https:// URL with a host"},
		{name: "a CA file that is missing", env: with("OTEL_EXPORTER_OTLP_CERTIFICATE", filepath.Join(t.TempDir(), "none.pem")), wantErr: "OTEL_EXPORTER_OTLP_CERTIFICATE: open "},
		{name: "a CA file without PEM", env: with("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", notPEM), wantErr: "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: " + notPEM + " holds no PEM certificate"},
		{name: "a client certificate without its key", env: with("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", notPEM), wantErr: "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together: set both or neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := readSignal(func(k string) string { return tt.env[k] }, "TRACES", "/v1/traces")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a header value or the URL's query", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(signalConfig{}), cmp.Comparer(func(a, b *tls.Config) bool { return a == b })); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadSignalCA trusts the CA file given, and only it.
func TestReadSignalCA(t *testing.T) {
	t.Parallel()
	col := newTLSCollector(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, col.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"the CA file is trusted", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": col.URL, "OTEL_EXPORTER_OTLP_CERTIFICATE": ca}, ""},
		{"without it the collector's certificate is not", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": col.URL}, "certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := readSignal(func(k string) string { return tt.env[k] }, "TRACES", "/v1/traces")
			if err != nil {
				t.Fatal(err)
			}
			err = newSender(cfg, "spans").send(t.Context(), nil)
			if tt.wantErr == "" && err != nil {
				t.Errorf("send: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("send: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestTemporality(t *testing.T) {
	t.Parallel()
	const c, d = metricdata.CumulativeTemporality, metricdata.DeltaTemporality
	kinds := []sdkmetric.InstrumentKind{
		sdkmetric.InstrumentKindCounter, sdkmetric.InstrumentKindObservableCounter, sdkmetric.InstrumentKindHistogram,
		sdkmetric.InstrumentKindUpDownCounter, sdkmetric.InstrumentKindObservableUpDownCounter,
		sdkmetric.InstrumentKindGauge, sdkmetric.InstrumentKindObservableGauge,
	}
	tests := []struct {
		pref    string
		want    []metricdata.Temporality // in the order of kinds
		wantErr string
	}{
		{"", []metricdata.Temporality{c, c, c, c, c, c, c}, ""},
		{"cumulative", []metricdata.Temporality{c, c, c, c, c, c, c}, ""},
		{"Delta", []metricdata.Temporality{d, d, d, c, c, c, c}, ""},
		{"lowmemory", []metricdata.Temporality{d, c, d, c, c, c, c}, ""},
		{"sometimes", nil, "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=sometimes is not supported: want cumulative, delta or lowmemory"},
	}
	for _, tt := range tests {
		sel, err := temporalitySelector(func(k string) string {
			if k == "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE" {
				return tt.pref
			}
			return ""
		})
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%q: error %v, want %q", tt.pref, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var got []metricdata.Temporality
		for _, k := range kinds {
			got = append(got, sel(k))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%q: temporality by kind (-want +got):\n%s", tt.pref, diff)
		}
	}
}

// TestConfigString shows no header value and no query, whatever the verb.
func TestConfigString(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	cfg := signalConfig{url: "https://u:" + secret + "@c:4318/v1/traces?key=" + secret, headers: http.Header{"Api-Key": {secret}}, timeout: time.Second, gzip: true}
	s := newSender(cfg, "spans")
	want := "OTLP to https://c:4318/v1/traces (headers [Api-Key] redacted, gzip true, timeout 1s, custom TLS false)"
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{cfg, &cfg, s} {
			if got := fmt.Sprintf(verb, v); got != want {
				t.Errorf("Sprintf(%q, %T) = %q, want %q", verb, v, got, want)
			}
		}
	}
}
