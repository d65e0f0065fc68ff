package iothub_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestExamplesImportOnlyPublicPackages keeps the godoc examples copyable
// into a user's module: a test file of a public package (one with no
// "internal" element in its path) that declares an Example function, such
// as example_test.go or jobs_example_test.go, may not import an internal
// package of this module. TestArchitecture cannot check this, since it
// reads the packages' own files only.
func TestExamplesImportOnlyPublicPackages(t *testing.T) {
	t.Parallel()
	module := modulePath(t)
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != "." && (name == "internal" || name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, "_test.go") {
			files = append(files, filepath.ToSlash(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var examples []string
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("parse %s: %v", path, err)
			continue
		}
		if !slices.ContainsFunc(f.Decls, isExample) {
			continue
		}
		examples = append(examples, path)
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Errorf("%s: import %s: %v", path, imp.Path.Value, err)
				continue
			}
			rest, ok := strings.CutPrefix(p, module+"/")
			if ok && slices.Contains(strings.Split(rest, "/"), "internal") {
				t.Errorf("%s has examples and imports %s, an internal package a user's module cannot import: write the examples with public packages only (iothubtest for the fake hub)", path, p)
			}
		}
	}
	for _, want := range []string{"example_test.go", "service/example_test.go", "service/jobs_example_test.go", "registry/example_test.go"} {
		if !slices.Contains(examples, want) {
			t.Errorf("found no examples in %s (files with examples: %q); the test must see the examples it guards", want, examples)
		}
	}
}

// isExample reports whether decl is a godoc example: a function named
// Example or Example followed by a name, without receiver.
func isExample(decl ast.Decl) bool {
	fn, ok := decl.(*ast.FuncDecl)
	return ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Example")
}

// modulePath reads the module path from go.mod.
func modulePath(t *testing.T) string {
	t.Helper()
	f, err := os.Open("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatal("go.mod has no module line")
	return ""
}
