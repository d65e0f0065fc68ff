package iothub_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The import rules of docs/architecture.md, as data. Package patterns are
// relative to the module path: "." is the root package, "service" that one
// package, "internal/testkit/..." a package and everything below it, "..."
// every package of the module.
//
// A rule applies to the packages that match from and none of except. Each
// of them may not import a package that matches forbid and none of allow:
// directly, or (transitive) through any chain of the module's packages.
// Only the packages' own files count, not their tests: tests may use the
// test tooling.
type importRule struct {
	rule       string
	from       []string
	except     []string
	forbid     []string
	allow      []string
	transitive bool
}

// production is every package that is neither test tooling nor an example:
// a production package added later is covered without a new rule. Test
// tooling is internal (internal/testkit/...) or public: the fake hub users
// test against (iothubtest) and the standalone simulator (cmd/iothubsim).
var (
	productionFrom   = []string{"..."}
	productionExcept = []string{"internal/testkit/...", "examples/...", "iothubtest/...", "cmd/iothubsim/..."}
)

var importRules = []importRule{
	{
		rule:       "production code never imports the test tooling",
		from:       productionFrom,
		except:     productionExcept,
		forbid:     []string{"internal/testkit/..."},
		transitive: true,
	},
	{
		rule:       "production code never imports the public test tooling",
		from:       productionFrom,
		except:     productionExcept,
		forbid:     []string{"iothubtest/...", "cmd/iothubsim/..."},
		transitive: true,
	},
	{
		rule:       "iothubtest imports no test tooling but the fake hub engine, internal/testkit/httpmock",
		from:       []string{"iothubtest/..."},
		forbid:     []string{"internal/testkit/...", "cmd/iothubsim/..."},
		allow:      []string{"internal/testkit/httpmock"},
		transitive: true,
	},
	{
		rule:       "service never imports registry",
		from:       []string{"service/..."},
		forbid:     []string{"registry/..."},
		transitive: true,
	},
	{
		rule:       "registry never imports service",
		from:       []string{"registry/..."},
		forbid:     []string{"service/..."},
		transitive: true,
	},
	{
		rule:   "edge is built on service: it imports only the root, service and internal/wire",
		from:   []string{"edge/..."},
		forbid: []string{"..."},
		allow:  []string{".", "service", "internal/wire"},
	},
	{
		rule:       "edge never imports registry",
		from:       []string{"edge/..."},
		forbid:     []string{"registry/..."},
		transitive: true,
	},
	{
		rule:       "service and registry never import edge",
		from:       []string{"service/...", "registry/..."},
		forbid:     []string{"edge/..."},
		transitive: true,
	},
	{
		rule:       "service and registry never import digitaltwin",
		from:       []string{"service/...", "registry/..."},
		forbid:     []string{"digitaltwin/..."},
		transitive: true,
	},
	{
		rule:       "digitaltwin imports neither service nor registry",
		from:       []string{"digitaltwin/..."},
		forbid:     []string{"service/...", "registry/..."},
		transitive: true,
	},
	{
		rule:       "the pipeline knows no operation: it imports neither service, registry, digitaltwin nor edge",
		from:       []string{"internal/pipeline/..."},
		forbid:     []string{"service/...", "registry/...", "digitaltwin/...", "edge/..."},
		transitive: true,
	},
	{
		rule:       "the root package imports nothing of the module",
		from:       []string{"."},
		forbid:     []string{"..."},
		transitive: true,
	},
	{
		rule:       "internal/wire imports nothing of the module but the root",
		from:       []string{"internal/wire/..."},
		forbid:     []string{"..."},
		allow:      []string{"."},
		transitive: true,
	},
	{
		rule:       "internal/flow imports nothing of the module but the root",
		from:       []string{"internal/flow/..."},
		forbid:     []string{"..."},
		allow:      []string{"."},
		transitive: true,
	},
	{
		rule:       "auth imports nothing of the module but the root",
		from:       []string{"auth/..."},
		forbid:     []string{"..."},
		allow:      []string{"."},
		transitive: true,
	},
	{
		rule:   "example programs import only public packages and examples/internal/...",
		from:   []string{"examples/..."},
		except: []string{"examples/internal/..."},
		forbid: []string{"internal/..."},
	},
	{
		rule:   "examples/internal/... imports no internal package of the module but the simulated fleet, internal/testkit/simfleet (the fake hub is the public iothubtest)",
		from:   []string{"examples/internal/..."},
		forbid: []string{"internal/..."},
		allow:  []string{"internal/testkit/simfleet"},
	},
	{
		rule:   "internal/testkit/simfleet builds its fleet through the public iothubtest only",
		from:   []string{"internal/testkit/simfleet"},
		forbid: []string{"internal/..."},
	},
}

// externalRules forbid packages outside the module, by import path prefix
// ("go.opentelemetry.io/otel/sdk" is that package and everything below
// it), to the module's packages that match from and none of except,
// through any chain of imports, the module's or others'.
var externalRules = []struct {
	rule   string
	from   []string
	except []string
	forbid []string
}{
	{
		rule:   "production code never imports an OpenTelemetry SDK or exporter: it takes the OpenTelemetry API's providers from the caller",
		from:   productionFrom,
		except: productionExcept,
		forbid: []string{"go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters"},
	},
	{
		rule: "the example programs link no gRPC, no OpenTelemetry exporter and no protobuf package: their OTLP export " +
			"(examples/internal/otelsetup) writes the messages with wire primitives of its own from the SDK's data, not " +
			"with the OTLP exporters, the generated OTLP types or google.golang.org/protobuf, which bring gRPC or init work",
		from: []string{"examples/..."},
		forbid: []string{
			"google.golang.org/grpc",
			"github.com/grpc-ecosystem/grpc-gateway",
			"golang.org/x/net/trace",
			"google.golang.org/protobuf",
			"go.opentelemetry.io/proto/otlp",
			"go.opentelemetry.io/otel/exporters",
		},
	},
}

// futurePackages are packages the rules name before they exist.
var futurePackages = []string{}

// listedPackage is what the test reads of `go list -json`.
type listedPackage struct {
	ImportPath string
	Imports    []string
	Module     *struct {
		Path string
		Main bool
	}
}

// TestArchitecture checks the import rules against the module's real
// import graph, as `go list -deps` reports it.
func TestArchitecture(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH, so the import graph cannot be listed:", err)
	}
	cmd := exec.CommandContext(t.Context(), goTool, "list", "-deps", "-json=ImportPath,Imports,Module", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./...: %v\n%s", err, stderr.Bytes())
	}
	g, err := readGraph(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := showSourcesToTestCache("."); err != nil {
		t.Fatal(err)
	}

	t.Run("rules name real packages", func(t *testing.T) {
		t.Parallel()
		check := func(where, p string) {
			if !slices.Contains(futurePackages, p) && !g.anyMatches(p) {
				t.Errorf("%s names %q, which matches no package of %s and is not declared in futurePackages", where, p, g.module)
			}
		}
		for _, r := range importRules {
			for _, list := range [][]string{r.from, r.except, r.forbid, r.allow} {
				for _, p := range list {
					check(fmt.Sprintf("rule %q", r.rule), p)
				}
			}
		}
	})

	t.Run("external imports follow the rules", func(t *testing.T) {
		t.Parallel()
		for _, r := range externalRules {
			for _, from := range g.pkgs {
				if !matchesAny(r.from, from) || matchesAny(r.except, from) {
					continue
				}
				prev := g.reachAll(g.full(from))
				for to := range prev {
					if !slices.ContainsFunc(r.forbid, func(f string) bool { return to == f || strings.HasPrefix(to, f+"/") }) {
						continue
					}
					chain := []string{to}
					for p := prev[to]; p != ""; p = prev[p] {
						chain = append(chain, p)
					}
					slices.Reverse(chain)
					t.Errorf("%s imports %s, which breaks the rule %q (docs/architecture.md): through %s",
						g.full(from), to, r.rule, strings.Join(chain, " → "))
				}
			}
		}
	})

	t.Run("imports follow the rules", func(t *testing.T) {
		t.Parallel()
		for _, r := range importRules {
			for _, from := range g.pkgs {
				if !matchesAny(r.from, from) || matchesAny(r.except, from) {
					continue
				}
				for _, to := range g.reach(from, r.transitive) {
					if !matchesAny(r.forbid, to) || matchesAny(r.allow, to) {
						continue
					}
					t.Errorf("%s imports %s, which breaks the rule %q (docs/architecture.md): %s",
						g.full(from), g.full(to), r.rule, g.path(from, to))
				}
			}
		}
	})
}

// showSourcesToTestCache reads every directory of the module below root and
// the state of its Go files and go.mod. The graph comes from a go list
// subprocess, whose reads go test's cache does not see; reading them here
// makes a change of an import, a new file or a new package run the test
// again instead of replaying a cached pass. Directories go list skips
// (testdata, and names that start with "." or "_") are skipped too.
func showSourcesToTestCache(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") || name == "go.mod" {
			_, err := os.Stat(path)
			return err
		}
		return nil
	})
}

// graph is the module's part of the import graph, with packages named
// relative to the module path.
type graph struct {
	module  string
	pkgs    []string            // every package of the module, sorted
	imports map[string][]string // direct imports within the module
	all     map[string][]string // direct imports of every listed package, by full path
}

// reachAll returns every package from imports, by full path, through any
// chain of imports, each with the package that imports it on a shortest
// chain ("" for from itself).
func (g *graph) reachAll(from string) map[string]string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range g.all[p] {
			if _, ok := prev[q]; !ok {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	delete(prev, from)
	return prev
}

func readGraph(out []byte) (*graph, error) {
	var listed []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("read go list output: %w", err)
		}
		listed = append(listed, p)
	}
	g := &graph{imports: make(map[string][]string), all: make(map[string][]string)}
	for _, p := range listed {
		if p.Module != nil && p.Module.Main {
			g.module = p.Module.Path
			break
		}
	}
	if g.module == "" {
		return nil, errors.New("go list reported no package of the main module")
	}
	for _, p := range listed {
		g.all[p.ImportPath] = p.Imports
		rel, ok := g.rel(p.ImportPath)
		if !ok {
			continue
		}
		g.pkgs = append(g.pkgs, rel)
		for _, imp := range p.Imports {
			if r, ok := g.rel(imp); ok {
				g.imports[rel] = append(g.imports[rel], r)
			}
		}
	}
	slices.Sort(g.pkgs)
	return g, nil
}

// rel returns the import path relative to the module, "." for its root,
// and whether the package belongs to the module.
func (g *graph) rel(importPath string) (string, bool) {
	if importPath == g.module {
		return ".", true
	}
	rest, ok := strings.CutPrefix(importPath, g.module+"/")
	return rest, ok
}

// full returns the import path of a package named relative to the module.
func (g *graph) full(rel string) string {
	if rel == "." {
		return g.module
	}
	return g.module + "/" + rel
}

// reach returns the module packages from imports: directly, or through any
// chain of imports when transitive.
func (g *graph) reach(from string, transitive bool) []string {
	if !transitive {
		return g.imports[from]
	}
	seen := map[string]bool{from: true}
	var out []string
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range g.imports[p] {
			if !seen[q] {
				seen[q] = true
				out = append(out, q)
				queue = append(queue, q)
			}
		}
	}
	slices.Sort(out)
	return out
}

// path describes the shortest chain of imports from one package to another.
func (g *graph) path(from, to string) string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 && prev[to] == "" {
		p := queue[0]
		queue = queue[1:]
		for _, q := range g.imports[p] {
			if _, ok := prev[q]; !ok {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	chain := []string{to}
	for p := prev[to]; p != ""; p = prev[p] {
		chain = append(chain, p)
	}
	slices.Reverse(chain)
	if len(chain) == 2 {
		return "a direct import"
	}
	return "through " + strings.Join(chain, " → ")
}

func (g *graph) anyMatches(pattern string) bool {
	return slices.ContainsFunc(g.pkgs, func(p string) bool { return matches(pattern, p) })
}

// matches reports whether the package rel matches pattern; see importRule.
func matches(pattern, rel string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

func matchesAny(patterns []string, rel string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(p, rel) })
}
