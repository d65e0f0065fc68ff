package otelsetup

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultTimeout bounds one export, retries included, when
// OTEL_EXPORTER_OTLP_TIMEOUT does not say otherwise.
const defaultTimeout = 10 * time.Second

// signalConfig is what the environment asks of one signal's export.
type signalConfig struct {
	url     string      // where bodies are posted
	headers http.Header // sent on every request; values are never shown
	gzip    bool        // Content-Encoding: gzip
	timeout time.Duration
	tls     *tls.Config // nil: the system's roots, no client certificate
}

// String shows the settings with the URL's query and the header values
// left out: they often hold API keys.
func (c signalConfig) String() string {
	names := slices.Sorted(maps.Keys(c.headers))
	return fmt.Sprintf("OTLP to %s (headers %v redacted, gzip %t, timeout %v, custom TLS %t)", redactURL(c.url), names, c.gzip, c.timeout, c.tls != nil)
}

// GoString is String, for %#v.
func (c signalConfig) GoString() string { return c.String() }

// redactURL is u without its query and user info, for messages.
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "[an invalid URL]"
	}
	return (&url.URL{Scheme: pu.Scheme, Host: pu.Host, Path: pu.Path}).String()
}

// readSignal reads the settings of one signal ("TRACES" or "METRICS"),
// whose default path under OTEL_EXPORTER_OTLP_ENDPOINT is path. A zero url
// means the signal is not exported, and nothing else is read.
func readSignal(getenv func(string) string, signal, path string) (signalConfig, error) {
	u, err := signalURL(getenv, signal, path)
	if err != nil || u == "" {
		return signalConfig{}, err
	}
	c := signalConfig{url: u, timeout: defaultTimeout}
	if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		// The URL is not shown: it may carry a key in its query.
		return signalConfig{}, fmt.Errorf("the OTLP %s endpoint is not an http:// or https:// URL with a host", strings.ToLower(signal))
	}
	if k, v := setting(getenv, signal, "HEADERS"); v != "" {
		if c.headers, err = parseHeaders(v); err != nil {
			return signalConfig{}, fmt.Errorf("%s: %w", k, err)
		}
	}
	if k, v := setting(getenv, signal, "TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return signalConfig{}, fmt.Errorf("%s=%s: want a positive number of milliseconds", k, v)
		}
		c.timeout = time.Duration(ms) * time.Millisecond
	}
	if k, v := setting(getenv, signal, "COMPRESSION"); v != "" {
		switch v {
		case "gzip":
			c.gzip = true
		case "none":
		default:
			return signalConfig{}, fmt.Errorf("%s=%s is not supported: want gzip or none", k, v)
		}
	}
	if c.tls, err = readTLS(getenv, signal); err != nil {
		return signalConfig{}, err
	}
	return c, nil
}

// setting is the variable OTEL_EXPORTER_OTLP_<signal>_<name>, or
// OTEL_EXPORTER_OTLP_<name> when that is empty: the signal's own setting
// wins, whole (headers are not merged). It returns the key it read.
func setting(getenv func(string) string, signal, name string) (key, value string) {
	key = "OTEL_EXPORTER_OTLP_" + signal + "_" + name
	if v := strings.TrimSpace(getenv(key)); v != "" {
		return key, v
	}
	key = "OTEL_EXPORTER_OTLP_" + name
	return key, strings.TrimSpace(getenv(key))
}

// parseHeaders parses the W3C Baggage-like list "key=value,key2=value2",
// with percent-encoded values. Its errors name entries by position, never
// by content: the values are often API keys.
func parseHeaders(s string) (http.Header, error) {
	h := http.Header{}
	for i, entry := range strings.Split(s, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		k, v, ok := strings.Cut(entry, "=")
		k = strings.TrimSpace(k)
		if !ok || !validToken(k) {
			return nil, fmt.Errorf("entry %d is not key=value with a header name for key (the form is key=value,key2=value2)", i+1)
		}
		v, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil || strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("the value of %s is not a valid percent-encoded header value", k)
		}
		h.Add(k, v)
	}
	return h, nil
}

// validToken reports whether s is an HTTP header name (RFC 9110 token).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

// readTLS reads the CA file and the client certificate and key of one
// signal; nil when none is set.
func readTLS(getenv func(string) string, signal string) (*tls.Config, error) {
	caKey, ca := setting(getenv, signal, "CERTIFICATE")
	certKey, cert := setting(getenv, signal, "CLIENT_CERTIFICATE")
	keyKey, key := setting(getenv, signal, "CLIENT_KEY")
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", caKey, err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", caKey, ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("%s and %s go together: set both or neither", certKey, keyKey)
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			// LoadX509KeyPair's errors name files and formats, not key bytes.
			return nil, fmt.Errorf("%s, %s: %w", certKey, keyKey, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
