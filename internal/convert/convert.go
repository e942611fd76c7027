// Package convert turns Argo Rollouts and Flagger manifests into KULTA's: `kubectl kulta
// convert` reads YAML streams, converts the objects it knows and passes every other object
// through as it was written. What KULTA cannot express is never dropped silently: each loss is a
// Warning naming the object and the field. The same input gives byte-identical output.
package convert

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Input is one YAML stream: a file, or standard input.
type Input struct {
	// Name is where it came from, for messages and for the output file of the same name.
	Name string
	Data []byte
}

// Output is the converted stream of one Input.
type Output struct {
	Name string
	Data []byte
}

// Warning is one thing the conversion could not express, or expressed differently.
type Warning struct {
	// Object names the input object: KIND NAMESPACE/NAME.
	Object string
	// Field is the path of the field in the input object.
	Field string
	// Message says what became of it.
	Message string
}

func (w Warning) String() string {
	if w.Field == "" {
		return fmt.Sprintf("%s: %s", w.Object, w.Message)
	}
	return fmt.Sprintf("%s: %s: %s", w.Object, w.Field, w.Message)
}

// Result is a conversion's output streams, in the order of the inputs, and its warnings, in the
// order of the objects and fields they concern.
type Result struct {
	Outputs  []Output
	Warnings []Warning
}

// document is one object of an input stream.
type document struct {
	input int
	raw   []byte
	obj   map[string]any
}

func (d document) kind() (apiVersion, kind string) {
	apiVersion, _ = d.obj["apiVersion"].(string)
	kind, _ = d.obj["kind"].(string)
	return apiVersion, kind
}

func (d document) name() (namespace, name string) {
	md, _ := d.obj["metadata"].(map[string]any)
	namespace, _ = md["namespace"].(string)
	name, _ = md["name"].(string)
	return namespace, name
}

// describe is KIND NAMESPACE/NAME, or KIND NAME without a namespace.
func (d document) describe() string {
	_, kind := d.kind()
	ns, name := d.name()
	if ns == "" {
		return kind + " " + name
	}
	return kind + " " + ns + "/" + name
}

// Groups and kinds the converter reads.
const (
	argoAPIVersion    = "argoproj.io/v1alpha1"
	flaggerAPIVersion = "flagger.app/v1beta1"
)

// Convert converts inputs. An input that is not YAML is an error naming it; anything else
// converts, with warnings for what was lost.
func Convert(inputs []Input) (Result, error) {
	var docs []document
	for i, in := range inputs {
		found, err := split(in.Data)
		if err != nil {
			return Result{}, fmt.Errorf("reading %s: %w", in.Name, err)
		}
		for _, d := range found {
			d.input = i
			docs = append(docs, d)
		}
	}
	c := &converter{catalog: newCatalog(docs)}
	out := make([][]string, len(inputs))
	for _, d := range docs {
		text, err := c.convert(d)
		if err != nil {
			return Result{}, err
		}
		if text != "" {
			out[d.input] = append(out[d.input], text)
		}
	}
	c.reportUnusedTemplates()
	res := Result{Warnings: dedupe(c.warnings)}
	for i, in := range inputs {
		res.Outputs = append(res.Outputs, Output{Name: in.Name, Data: []byte(strings.Join(out[i], "---\n"))})
	}
	return res, nil
}

// split reads the documents of a YAML stream, keeping each one's text. Empty documents are
// skipped.
func split(data []byte) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufioReader(data))
	var out []document
	for {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(out)+1, err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", len(out)+1, err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, document{raw: trimDocument(raw), obj: obj})
	}
}

// trimDocument is a document's text without a leading separator and with one final newline.
func trimDocument(raw []byte) []byte {
	text := bytes.TrimLeft(raw, "\n")
	text = bytes.TrimPrefix(text, []byte("---\n"))
	return append(bytes.TrimRight(text, "\n"), '\n')
}

// converter holds what one conversion learned and said.
type converter struct {
	catalog  *catalog
	warnings []Warning
}

func (c *converter) warn(object, field, format string, args ...any) {
	c.warnings = append(c.warnings, Warning{Object: object, Field: field, Message: fmt.Sprintf(format, args...)})
}

// convert returns d's output text: converted, passed through, or "" for an object that was
// folded into another (an AnalysisTemplate into its Rollouts).
func (c *converter) convert(d document) (string, error) {
	apiVersion, kind := d.kind()
	switch {
	case apiVersion == argoAPIVersion && kind == "Rollout":
		return c.argoRollout(d)
	case apiVersion == argoAPIVersion && (kind == "AnalysisTemplate" || kind == "ClusterAnalysisTemplate"):
		return "", nil
	case apiVersion == flaggerAPIVersion && kind == "Canary":
		return c.flaggerCanary(d)
	case apiVersion == flaggerAPIVersion && kind == "MetricTemplate":
		return "", nil
	}
	return string(d.raw), nil
}

// marshal writes objects as YAML documents, each with its keys in order.
func marshal(objects ...any) (string, error) {
	var parts []string
	for _, obj := range objects {
		data, err := yaml.Marshal(obj)
		if err != nil {
			return "", fmt.Errorf("writing YAML: %w", err)
		}
		parts = append(parts, string(data))
	}
	return strings.Join(parts, "---\n"), nil
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func bufioReader(data []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(data)) }

// dedupe drops repeated warnings (a template inlined twice says the same twice), keeping order.
func dedupe(warnings []Warning) []Warning {
	seen := map[Warning]bool{}
	var out []Warning
	for _, w := range warnings {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}
