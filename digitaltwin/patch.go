package digitaltwin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/hubkit/iothub"
)

// Limits of a digital twin patch, as IoT Hub documents them for Plug and
// Play.
const (
	// MaxNameLen is the longest DTDL name of a component or property.
	MaxNameLen = 64
	// MaxDepth is the deepest nesting of objects in a property value: an
	// object value is one level, an object inside it two, and so on.
	MaxDepth = 5
)

// opValidate names the operation of Patch.Validate in its errors.
const opValidate = "Patch.Validate"

// Patch is a JSON Patch for a digital twin, built with its Add, Replace and
// Remove methods and sent with Client.Update. The zero value is an empty
// patch, ready to use; a Patch is not safe for concurrent use while it is
// being built.
//
// An add or replace sets the desired value of a writable property; a remove
// clears it. A whole-component add or replace sets the desired values of the
// properties it gives and clears those of the component's writable
// properties it leaves out.
//
// The builder records operations as given; Validate (which Update calls
// before sending) checks them against IoT Hub's rules: component and
// property names are DTDL names (letters, digits and '_', 1 to MaxNameLen
// characters, not starting with a digit or '_', not ending with '_'), and
// so are the field names of object values; values encode as JSON, hold no
// array and no null, and nest objects at most MaxDepth levels deep. A DTDL
// name holds neither '/' nor '~', so the paths need no JSON Pointer
// escaping.
type Patch struct {
	ops []patchOp
}

// patchOp is one operation as the caller gave it.
type patchOp struct {
	op        string // "add", "replace" or "remove"
	component string // "" for a root property
	name      string // "" for a whole component
	value     any    // a property's value, or a whole component's map[string]any
	whole     bool   // the operation is on a whole component
}

// AddProperty sets the desired value of a root (default component)
// property.
func (p *Patch) AddProperty(name string, value any) {
	p.ops = append(p.ops, patchOp{op: "add", name: name, value: value})
}

// ReplaceProperty sets the desired value of a root property, as
// AddProperty does.
func (p *Patch) ReplaceProperty(name string, value any) {
	p.ops = append(p.ops, patchOp{op: "replace", name: name, value: value})
}

// RemoveProperty clears the desired value of a root property.
func (p *Patch) RemoveProperty(name string) {
	p.ops = append(p.ops, patchOp{op: "remove", name: name})
}

// AddComponentProperty sets the desired value of a property of a component.
func (p *Patch) AddComponentProperty(component, name string, value any) {
	p.ops = append(p.ops, patchOp{op: "add", component: component, name: name, value: value})
}

// ReplaceComponentProperty sets the desired value of a property of a
// component, as AddComponentProperty does.
func (p *Patch) ReplaceComponentProperty(component, name string, value any) {
	p.ops = append(p.ops, patchOp{op: "replace", component: component, name: name, value: value})
}

// RemoveComponentProperty clears the desired value of a property of a
// component.
func (p *Patch) RemoveComponentProperty(component, name string) {
	p.ops = append(p.ops, patchOp{op: "remove", component: component, name: name})
}

// AddComponent sets the desired values of a whole component: those of the
// properties in props, keyed by property name, and clears those of its
// other writable properties. The patch carries the empty "$metadata" object
// that marks a whole-component operation; props must not hold it.
func (p *Patch) AddComponent(component string, props map[string]any) {
	p.ops = append(p.ops, patchOp{op: "add", component: component, value: props, whole: true})
}

// ReplaceComponent sets the desired values of a whole component, as
// AddComponent does.
func (p *Patch) ReplaceComponent(component string, props map[string]any) {
	p.ops = append(p.ops, patchOp{op: "replace", component: component, value: props, whole: true})
}

// RemoveComponent clears the desired values of every writable property of a
// component.
func (p *Patch) RemoveComponent(component string) {
	p.ops = append(p.ops, patchOp{op: "remove", component: component, whole: true})
}

// Len returns the number of operations in the patch.
func (p *Patch) Len() int { return len(p.ops) }

// Validate checks the patch against IoT Hub's digital twin rules, as Update
// does before sending anything, and returns an *iothub.ArgumentError naming
// the operation and the field that breaks one (such as
// "Patch[2].value.a.b"), or nil.
func (p *Patch) Validate() error {
	_, err := p.encode(opValidate)
	return err
}

// MarshalJSON returns the patch as the JSON Patch array Update sends, or
// the error Validate returns.
func (p Patch) MarshalJSON() ([]byte, error) {
	return p.encode(opValidate)
}

// wireOp is one operation on the wire.
type wireOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
}

// encode validates the patch and returns its JSON body; errors name op.
func (p *Patch) encode(op string) ([]byte, error) {
	if p == nil || len(p.ops) == 0 {
		return nil, &iothub.ArgumentError{Operation: op, Field: "Patch", Rule: "must hold at least one operation"}
	}
	out := make([]wireOp, len(p.ops))
	for i, o := range p.ops {
		field := "Patch[" + strconv.Itoa(i) + "]"
		fail := func(f, rule string, err error) error {
			return &iothub.ArgumentError{Operation: op, Field: field + f, Rule: rule, Err: err}
		}
		w := wireOp{Op: o.op}
		switch {
		case o.whole:
			if rule := checkName(o.component); rule != "" {
				return nil, fail(".path", "component name "+strconv.Quote(o.component)+": "+rule, nil)
			}
			w.Path = "/" + o.component
		case o.component != "":
			if rule := checkName(o.component); rule != "" {
				return nil, fail(".path", "component name "+strconv.Quote(o.component)+": "+rule, nil)
			}
			if rule := checkName(o.name); rule != "" {
				return nil, fail(".path", "property name "+strconv.Quote(o.name)+": "+rule, nil)
			}
			w.Path = "/" + o.component + "/" + o.name
		default:
			if rule := checkName(o.name); rule != "" {
				return nil, fail(".path", "property name "+strconv.Quote(o.name)+": "+rule, nil)
			}
			w.Path = "/" + o.name
		}
		if o.op != "remove" {
			raw, f, rule, err := encodeValue(o)
			if rule != "" {
				return nil, fail(".value"+f, rule, err)
			}
			w.Value = raw
		}
		out[i] = w
	}
	b, err := json.Marshal(out)
	if err != nil { // not reached: every value is already valid JSON
		return nil, &iothub.ArgumentError{Operation: op, Field: "Patch", Rule: "must encode as JSON", Err: err}
	}
	return b, nil
}

// encodeValue returns the JSON of an add or replace operation's value,
// or the field (below "value") and rule it breaks.
func encodeValue(o patchOp) (raw json.RawMessage, field, rule string, err error) {
	if !o.whole {
		return encodeProperty(o.value, "")
	}
	props, _ := o.value.(map[string]any)
	var buf bytes.Buffer
	buf.WriteByte('{')
	for _, name := range sortedKeys(props) {
		if rule := checkName(name); rule != "" {
			return nil, "." + name, "property name " + strconv.Quote(name) + ": " + rule, nil
		}
		v, f, rule, err := encodeProperty(props[name], "."+name)
		if rule != "" {
			return nil, f, rule, err
		}
		nb, _ := json.Marshal(name)
		buf.Write(nb)
		buf.WriteByte(':')
		buf.Write(v)
		buf.WriteByte(',')
	}
	buf.WriteString(`"$metadata":{}}`)
	return buf.Bytes(), "", "", nil
}

// encodeProperty encodes one property value and checks it; field is its
// place below "value".
func encodeProperty(v any, field string) (json.RawMessage, string, string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, field, "must encode as JSON", err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var decoded any
	if err := dec.Decode(&decoded); err != nil {
		return nil, field, "must encode as JSON", err
	}
	if f, rule := checkValue(decoded, field, 0); rule != "" {
		return nil, f, rule, nil
	}
	return b, "", "", nil
}

// checkValue applies the value rules to a decoded JSON value; depth is the
// number of objects around it.
func checkValue(v any, field string, depth int) (string, string) {
	switch x := v.(type) {
	case nil:
		return field, "must not be null (a remove operation clears a desired value)"
	case []any:
		return field, "must not be an array: digital twin properties hold no arrays"
	case map[string]any:
		if depth+1 > MaxDepth {
			return field, fmt.Sprintf("objects must nest at most %d levels deep", MaxDepth)
		}
		for _, k := range sortedKeys(x) {
			if rule := checkName(k); rule != "" {
				return field + "." + k, "field name " + strconv.Quote(k) + ": " + rule
			}
			if f, rule := checkValue(x[k], field+"."+k, depth+1); rule != "" {
				return f, rule
			}
		}
	}
	return "", ""
}

// checkName applies the DTDL name rule and returns what is wrong, or "".
func checkName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxNameLen:
		return fmt.Sprintf("must be at most %d characters", MaxNameLen)
	case s[0] >= '0' && s[0] <= '9':
		return "must not start with a digit"
	case s[0] == '_':
		return "must not start with '_'"
	case s[len(s)-1] == '_':
		return "must not end with '_'"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return "must hold only ASCII letters, digits and '_' (a DTDL name)"
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
