package analysis

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// ErrInvalidTemplate means a PromQL query template cannot be used: it does not parse, it uses
// something other than the documented variables, or it places a label value outside a
// double-quoted string literal.
var ErrInvalidTemplate = errors.New("invalid query template")

// Target names what a query measures: one Service of one Rollout. Its values reach PromQL only
// as escaped string literals, so a value such as `x"} or vector(1) #` cannot change the query.
type Target struct {
	// Namespace is the Rollout's namespace.
	Namespace string
	// Rollout is the Rollout's name.
	Rollout string
	// Service is the Kubernetes Service whose traffic is measured: the canary or stable
	// Service, or an A/B variant's.
	Service string
	// Revision is the pod-template hash of the measured ReplicaSet; empty when unknown.
	Revision string
}

// Query templates are PromQL with Go text/template substitutions. The variables are:
//
//	{{.Namespace}}  the Rollout's namespace           (inside a double-quoted string)
//	{{.Rollout}}    the Rollout's name                (inside a double-quoted string)
//	{{.Service}}    the measured Service              (inside a double-quoted string)
//	{{.Revision}}   the measured pod-template hash    (inside a double-quoted string)
//	{{.Window}}     the query window, such as 5m      (anywhere, typically in [ ])
//
// for example
//
//	sum(rate(http_requests_total{namespace="{{.Namespace}}",service="{{.Service}}"}[{{.Window}}]))
//
// The label-value variables are escaped for a double-quoted PromQL string (backslash, double
// quote, newline and other control characters), and a template that uses them anywhere else
// (bare, in single quotes or backticks, in a comment, or right after a backslash) is rejected,
// as are functions, pipelines and control structures: substitution is the only feature.
var templateVariables = map[string]bool{
	"Namespace": true,
	"Rollout":   true,
	"Service":   true,
	"Revision":  true,
	"Window":    false,
}

// templateData is what a template is executed with: label values already escaped, and the
// window in PromQL's duration syntax.
type templateData struct {
	Namespace, Rollout, Service, Revision, Window string
}

// ValidateQueryTemplate reports (wrapping ErrInvalidTemplate) why text cannot be used as a
// query template, or nil when it can.
func ValidateQueryTemplate(text string) error {
	_, err := parseQueryTemplate(text)
	return err
}

// RenderQuery fills a query template with the escaped values of target and the window.
func RenderQuery(text string, target Target, window time.Duration) (string, error) {
	tmpl, err := parseQueryTemplate(text)
	if err != nil {
		return "", err
	}
	if window < time.Second {
		return "", fmt.Errorf("%w: window %s is shorter than 1s", ErrInvalidTemplate, window)
	}
	data := templateData{
		Namespace: EscapePromQLString(target.Namespace),
		Rollout:   EscapePromQLString(target.Rollout),
		Service:   EscapePromQLString(target.Service),
		Revision:  EscapePromQLString(target.Revision),
		Window:    model.Duration(window).String(),
	}
	var out strings.Builder
	if err := tmpl.Execute(&out, data); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidTemplate, err)
	}
	return out.String(), nil
}

// parseQueryTemplate parses text and checks where each substitution stands.
func parseQueryTemplate(text string) (*template.Template, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%w: the query is empty", ErrInvalidTemplate)
	}
	tmpl, err := template.New("query").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTemplate, err)
	}
	if err := checkSubstitutions(tmpl.Tree); err != nil {
		return nil, err
	}
	return tmpl, nil
}

// checkSubstitutions walks the top level of a parsed template, following the PromQL quoting
// state through its text, and accepts only plain variable substitutions in safe places.
func checkSubstitutions(tree *parse.Tree) error {
	var scanner promQLScanner
	for _, node := range tree.Root.Nodes {
		switch n := node.(type) {
		case *parse.TextNode:
			scanner.scan(string(n.Text))
		case *parse.ActionNode:
			if err := checkAction(tree, n, scanner); err != nil {
				return err
			}
		default:
			location, _ := tree.ErrorContext(node)
			return fmt.Errorf("%w: %s: %s is not supported; only variables such as {{.Service}} are",
				ErrInvalidTemplate, location, node)
		}
	}
	return nil
}

// checkAction accepts {{.Field}} for a known field, placed where its value cannot end a
// string literal.
func checkAction(tree *parse.Tree, n *parse.ActionNode, scanner promQLScanner) error {
	location, _ := tree.ErrorContext(n)
	name, ok := variableName(n)
	if !ok {
		return fmt.Errorf("%w: %s: %s is not a template variable; use one of {{.Namespace}}, "+
			"{{.Rollout}}, {{.Service}}, {{.Revision}}, {{.Window}}", ErrInvalidTemplate, location, n)
	}
	if !templateVariables[name] {
		return nil
	}
	if scanner.state != inDoubleQuote {
		return fmt.Errorf("%w: %s: %s must be inside a double-quoted string, as in service=\"{{.Service}}\"",
			ErrInvalidTemplate, location, n)
	}
	if scanner.escaped {
		return fmt.Errorf("%w: %s: %s must not follow a backslash", ErrInvalidTemplate, location, n)
	}
	return nil
}

// variableName returns Field for an action that is exactly {{.Field}} with a known Field.
func variableName(n *parse.ActionNode) (string, bool) {
	if len(n.Pipe.Decl) != 0 || len(n.Pipe.Cmds) != 1 || len(n.Pipe.Cmds[0].Args) != 1 {
		return "", false
	}
	field, ok := n.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(field.Ident) != 1 {
		return "", false
	}
	if _, known := templateVariables[field.Ident[0]]; !known {
		return "", false
	}
	return field.Ident[0], true
}

// quoteState is where a PromQL scanner stands: in plain query text, in a string literal of
// one of the three kinds, or in a comment.
type quoteState int

const (
	outsideString quoteState = iota
	inDoubleQuote
	inSingleQuote
	inBacktick
	inComment
)

// promQLScanner follows string literals and comments through PromQL text.
type promQLScanner struct {
	state   quoteState
	escaped bool
}

// scan advances the scanner over text.
func (s *promQLScanner) scan(text string) {
	for _, r := range text {
		switch s.state {
		case outsideString:
			s.state = openingState(r)
		case inDoubleQuote, inSingleQuote:
			s.scanQuoted(r)
		case inBacktick:
			if r == '`' {
				s.state = outsideString
			}
		case inComment:
			if r == '\n' {
				s.state = outsideString
			}
		}
	}
}

// openingState is the state after r in plain query text.
func openingState(r rune) quoteState {
	switch r {
	case '"':
		return inDoubleQuote
	case '\'':
		return inSingleQuote
	case '`':
		return inBacktick
	case '#':
		return inComment
	default:
		return outsideString
	}
}

// scanQuoted advances over r inside a single- or double-quoted string with escapes.
func (s *promQLScanner) scanQuoted(r rune) {
	switch {
	case s.escaped:
		s.escaped = false
	case r == '\\':
		s.escaped = true
	case r == '"' && s.state == inDoubleQuote, r == '\'' && s.state == inSingleQuote:
		s.state = outsideString
	}
}

// EscapePromQLString escapes s for use between the double quotes of a PromQL string literal:
// backslash, double quote, newline, carriage return and tab get their backslash escapes, other
// control characters and bytes that are not UTF-8 a \x escape. The result can never end the
// literal, so a value cannot inject query text.
func EscapePromQLString(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			writeHexEscape(&b, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			writeHexEscape(&b, byte(r))
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// writeHexEscape writes c as a \xHH escape.
func writeHexEscape(b *strings.Builder, c byte) {
	const digits = "0123456789abcdef"
	b.WriteString(`\x`)
	b.WriteByte(digits[c>>4])
	b.WriteByte(digits[c&0x0f])
}
