package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hubkit/iothub"
)

func TestCredentialsResolve(t *testing.T) {
	t.Parallel()
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvConnectionString {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name    string
		args    []string
		env     string
		want    Credentials
		wantErr bool
	}{
		{name: "none", want: Credentials{}},
		{name: "from the environment", env: "HostName=h", want: Credentials{ConnectionString: "HostName=h"}},
		{name: "flag over the environment", args: []string{"-connection-string", "HostName=f"}, env: "HostName=e", want: Credentials{ConnectionString: "HostName=f"}},
		{name: "hub leaves the environment alone", args: []string{"-hub", "h.azure-devices.net"}, env: "HostName=e", want: Credentials{Hub: "h.azure-devices.net"}},
		{name: "both", args: []string{"-hub", "h", "-connection-string", "HostName=f"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c Credentials
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			c.Register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := c.Resolve(env(tt.env))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Resolve: %v, want an error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, c); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
			if c.Given() != (tt.want != Credentials{}) {
				t.Errorf("Given() = %v", c.Given())
			}
		})
	}
}

func TestMethodFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		flags   MethodFlags
		method  string
		wantErr string // "" for none; from Check, then Params
	}{
		{name: "defaults", flags: MethodFlags{Payload: "null"}, method: "reboot"},
		{name: "timeout", flags: MethodFlags{Payload: "null", Timeout: 3}, method: "reboot", wantErr: "-timeout must be 0 (the hub default, 30 s) or within [5, 300]; got 3"},
		{name: "connect timeout", flags: MethodFlags{Payload: "null", ConnectTimeout: 301}, method: "reboot", wantErr: "-connect-timeout must be within [0, 300]; got 301"},
		{name: "payload", flags: MethodFlags{Payload: `{"a":`}, method: "reboot", wantErr: `-payload is not valid JSON: {"a":`},
		{name: "method name", flags: MethodFlags{Payload: "null"}, method: "re boot", wantErr: "iothub: MethodParams.Validate: invalid MethodParams.Name: has ' ' at byte 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.flags.Check()
			if err == nil {
				_, err = tt.flags.Params(tt.method)
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if tt.wantErr == "" && got != "" || tt.wantErr != "" && !strings.HasPrefix(got, tt.wantErr) {
				t.Errorf("error %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func TestStderrFail(t *testing.T) {
	t.Parallel()
	hubErr := &iothub.Error{StatusCode: 404, Code: 404001, CodeName: "DeviceNotFound", Message: "no such device", TrackingID: "tid-1"}
	tests := []struct {
		name     string
		what     string
		err      error
		wantCode int
		want     string
	}{
		{"hub error", "", hubErr, ExitFailed, "p: IoT Hub error 404001 DeviceNotFound (HTTP 404): no such device\np: tracking ID tid-1\n"},
		{"hub error while doing something", "list the targets", hubErr, ExitFailed, "p: list the targets: IoT Hub error 404001 DeviceNotFound (HTTP 404): no such device\np: tracking ID tid-1\n"},
		{"argument", "", &iothub.ArgumentError{Operation: "Op", Field: "f", Rule: "must be"}, ExitUsage, "p: iothub: Op: invalid f: must be\n"},
		{"other", "do it", errors.New("boom"), ExitFailed, "p: do it: boom\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			code := Stderr{Prog: "p", W: &b}.Fail(tt.what, tt.err)
			if code != tt.wantCode {
				t.Errorf("code %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStderrUsage(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	s := Stderr{Prog: "p", W: &b}
	if code := s.Usage(ErrFlagsReported); code != ExitUsage || b.Len() != 0 {
		t.Errorf("reported flags: code %d, stderr %q", code, b.String())
	}
	if code := s.Usage(errors.New("-x is bad")); code != ExitUsage || b.String() != "p: -x is bad\n" {
		t.Errorf("code %d, stderr %q", code, b.String())
	}
}

func TestParseCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		allowed []string
		want    []string
		wantErr string
	}{
		{[]string{"a", "b"}, nil, []string{"a", "b"}, ""},
		{[]string{"-n", "3", "a", "-v", "b"}, []string{"n", "v"}, []string{"a", "b"}, ""},
		{[]string{"a", "b", "-n", "3"}, []string{"n"}, []string{"a", "b"}, ""},
		{[]string{"a", "-v", "-n", "3"}, []string{"n"}, nil, "get does not take -v"},
		{[]string{"-v", "-n", "3"}, nil, nil, "get does not take -n, -v"},
		{[]string{"a", "-nope"}, nil, nil, ErrFlagsReported.Error()},
		{nil, nil, nil, ""},
	}
	for _, tt := range tests {
		sub := flag.NewFlagSet("p get", flag.ContinueOnError)
		sub.SetOutput(io.Discard)
		sub.Int("n", 0, "")
		sub.Bool("v", false, "")
		got, err := ParseCommand(sub, tt.args, "get", tt.allowed)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if diff := cmp.Diff(tt.want, got); diff != "" || gotErr != tt.wantErr {
			t.Errorf("ParseCommand(%q, allowed %q) = %q, %q; want %q, %q", tt.args, tt.allowed, got, gotErr, tt.want, tt.wantErr)
		}
	}
}
