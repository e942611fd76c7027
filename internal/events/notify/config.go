package notify

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

// ServiceType is the format a service receives: a Slack or Microsoft Teams incoming webhook, or
// a generic JSON webhook.
type ServiceType string

// Service types.
const (
	Slack   ServiceType = "slack"
	Teams   ServiceType = "teams"
	Webhook ServiceType = "webhook"
)

// Trigger is a kind of transition users subscribe to.
type Trigger string

// Triggers, in the order a rollout meets them.
const (
	Started        Trigger = "started"
	StepAdvanced   Trigger = "step-advanced"
	Paused         Trigger = "paused"
	AnalysisFailed Trigger = "analysis-failed"
	RolledBack     Trigger = "rolled-back"
	Promoted       Trigger = "promoted"
	Completed      Trigger = "completed"
)

// AllTriggers lists every trigger.
var AllTriggers = []Trigger{Started, StepAdvanced, Paused, AnalysisFailed, RolledBack, Promoted, Completed}

// Service is one destination of notifications, configured once for the controller.
type Service struct {
	// Name is what Rollouts subscribe to (kulta.io/notify).
	Name string `json:"name"`
	// Type is the format: slack, teams or webhook.
	Type ServiceType `json:"type"`
	// URL is the endpoint; URLFile a file holding it (a mounted Secret), read at start-up.
	URL     string `json:"url,omitempty"`
	URLFile string `json:"urlFile,omitempty"`
	// TokenFile holds a bearer token sent as the Authorization header (webhook services).
	TokenFile string `json:"tokenFile,omitempty"`
	// Triggers limits what the service is told; all triggers when empty.
	Triggers []Trigger `json:"triggers,omitempty"`
	// Template is a Go text/template of the message text over Message's fields; a line per
	// transition naming the Rollout when empty.
	Template string `json:"template,omitempty"`

	target   string
	token    string
	template *template.Template
}

// Config is the notification configuration: the file --notifications-config names.
type Config struct {
	Services []Service `json:"services"`
}

var serviceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// LoadConfig reads and checks a configuration file; every problem names the service and field.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading notifications config: %w", err)
	}
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, fmt.Errorf("notifications config %s: %w", path, err)
	}
	if err := cfg.prepare(); err != nil {
		return nil, fmt.Errorf("notifications config %s: %w", path, err)
	}
	return &cfg, nil
}

// prepare checks the configuration, reads the files it names and parses the templates.
func (c *Config) prepare() error {
	var errs []error
	seen := map[string]bool{}
	for i := range c.Services {
		s := &c.Services[i]
		field := fmt.Sprintf("services[%d]", i)
		if !serviceName.MatchString(s.Name) {
			errs = append(errs, fmt.Errorf("%s.name %q: must be a lowercase DNS label", field, s.Name))
		} else {
			field = fmt.Sprintf("services[%s]", s.Name)
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("%s: a second service of this name", field))
		}
		seen[s.Name] = true
		if !slices.Contains([]ServiceType{Slack, Teams, Webhook}, s.Type) {
			errs = append(errs, fmt.Errorf("%s.type %q: must be slack, teams or webhook", field, s.Type))
		}
		for _, t := range s.Triggers {
			if !slices.Contains(AllTriggers, t) {
				errs = append(errs, fmt.Errorf("%s.triggers: unknown trigger %q", field, t))
			}
		}
		if err := s.prepare(field); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) prepare(field string) error {
	switch {
	case (s.URL == "") == (s.URLFile == ""):
		return fmt.Errorf("%s: set exactly one of url and urlFile", field)
	case s.URLFile != "":
		data, err := os.ReadFile(s.URLFile)
		if err != nil {
			return fmt.Errorf("%s.urlFile: %w", field, err)
		}
		s.target = strings.TrimSpace(string(data))
	default:
		s.target = s.URL
	}
	u, err := url.Parse(s.target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Never the URL itself: it is the secret of an incoming webhook.
		return fmt.Errorf("%s: the URL is not an absolute http or https URL", field)
	}
	if s.TokenFile != "" {
		data, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return fmt.Errorf("%s.tokenFile: %w", field, err)
		}
		s.token = strings.TrimSpace(string(data))
	}
	text := s.Template
	if text == "" {
		text = defaultTemplate
	}
	tmpl, err := template.New(s.Name).Option("missingkey=error").Parse(text)
	if err != nil {
		return fmt.Errorf("%s.template: %w", field, err)
	}
	if err := tmpl.Execute(&strings.Builder{}, sampleMessage); err != nil {
		return fmt.Errorf("%s.template: %w", field, err)
	}
	s.template = tmpl
	return nil
}

// wants reports whether the service is told of a transition with triggers.
func (s *Service) wants(triggers []Trigger) bool {
	if len(s.Triggers) == 0 {
		return true
	}
	for _, t := range triggers {
		if slices.Contains(s.Triggers, t) {
			return true
		}
	}
	return false
}

// secrets are the strings of this service that no message, log or status may show.
func (s *Service) secrets() []string {
	var out []string
	if s.URLFile != "" {
		out = append(out, s.target)
	}
	if s.token != "" {
		out = append(out, s.token)
	}
	if u, err := url.Parse(s.target); err == nil && (u.Path != "" || u.RawQuery != "") {
		// An incoming webhook's path is its secret, whichever way it was configured.
		out = append(out, u.Path, u.RawQuery)
	}
	return out
}
