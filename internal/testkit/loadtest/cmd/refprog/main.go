// Command refprog is the minimal reference program progload measures
// examples/fleet-reboot against: it invokes a direct method on each device
// of a list, concurrency at a time, with net/http (HTTP/1.1 keep-alive), one
// SAS token minted at start, and a JSON decode of each answer, and writes
// nothing but a one-line summary on standard error. It trusts the
// certificates of the system pool (SSL_CERT_FILE).
//
// Usage:
//
//	refprog -connection-string CS -devices @FILE [-concurrency N] [-method reboot]
//
// It exits 0 when every device answered status 200, 1 otherwise, 2 on bad
// flags.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubkit/iothub"
	"github.com/hubkit/iothub/auth"
)

func main() {
	var (
		cs, devices, method string
		concurrency         int
	)
	flag.StringVar(&cs, "connection-string", "", "service connection string")
	flag.StringVar(&devices, "devices", "", "comma-separated device ids, or @FILE with one id per line")
	flag.StringVar(&method, "method", "reboot", "method name (no JSON escaping needed)")
	flag.IntVar(&concurrency, "concurrency", 16, "calls in flight at once")
	flag.Parse()
	if cs == "" || devices == "" || concurrency <= 0 {
		fmt.Fprintln(os.Stderr, "refprog: -connection-string, -devices and a positive -concurrency are required")
		os.Exit(2)
	}
	ids, err := readIDs(devices)
	if err == nil {
		err = run(cs, method, ids, concurrency)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "refprog:", err)
		os.Exit(1)
	}
}

// readIDs reads a comma-separated list, or @FILE with one id per line.
func readIDs(arg string) ([]string, error) {
	name, ok := strings.CutPrefix(arg, "@")
	if !ok {
		return strings.Split(arg, ","), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" && !strings.HasPrefix(id, "#") {
			ids = append(ids, id)
		}
	}
	return ids, sc.Err()
}

// client is the whole reference client: a transport, a base URL and a
// token.
type client struct {
	hc    *http.Client
	base  string
	authz string
	ua    string
}

func newClient(connectionString string) (*client, error) {
	cs, err := auth.ParseConnectionString(connectionString)
	if err != nil {
		return nil, err
	}
	tok, err := auth.NewSASToken(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey(), time.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	// Built from scratch: a clone of http.DefaultTransport carries "h2" in
	// its TLS configuration's NextProtos, which Protocols does not undo.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		Protocols:           new(http.Protocols),
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
	tr.Protocols.SetHTTP1(true)
	return &client{
		hc:    &http.Client{Transport: tr},
		base:  "https://" + cs.HostName,
		authz: tok,
		ua:    "refprog (" + runtime.Version() + ")",
	}, nil
}

func run(cs, method string, ids []string, concurrency int) error {
	c, err := newClient(cs)
	if err != nil {
		return err
	}
	body := []byte(`{"methodName":"` + method + `","payload":null}`)
	next := make(chan string)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for id := range next {
				if status, err := c.invoke(id, body); err != nil || status != 200 {
					failed.Add(1)
				}
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	fmt.Fprintf(os.Stderr, "refprog: %d calls, %d failed\n", len(ids), failed.Load())
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d calls failed", n, len(ids))
	}
	return nil
}

// invoke sends one direct method call and decodes its answer.
func (c *client) invoke(id string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	u := c.base + "/twins/" + url.PathEscape(id) + "/methods?api-version=" + iothub.APIVersion
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = http.Header{
		"Authorization": {c.authz},
		"Content-Type":  {"application/json; charset=utf-8"},
		"Accept":        {"application/json"},
		"User-Agent":    {c.ua},
		"Request-Id":    {rand.Text()},
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("hub answered %d", resp.StatusCode)
	}
	var answer struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(b, &answer); err != nil {
		return 0, err
	}
	if answer.Status == nil {
		return 0, errors.New("answer has no status")
	}
	return *answer.Status, nil
}
