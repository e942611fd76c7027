package notify

import (
	"fmt"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

func TestLoadConfigErrorsNameServiceAndField(t *testing.T) {
	const secretPath = "/services/T0SECRET/B0SECRET/pathsecret"
	httpsURL := "https://hooks.example.com" + secretPath
	bothURLFile := writeFile(t, "url", httpsURL)
	ftpURLFile := writeFile(t, "ftp-url", "ftp://hooks.example.com"+secretPath+"\n")
	missing := filepath.Join(t.TempDir(), "does-not-exist")

	tests := []struct {
		name    string
		yaml    string
		want    []string
		wantNot []string
	}{{
		name: "duplicate names",
		yaml: `
services:
- {name: dup, type: slack, url: "https://hooks.example.com/a"}
- {name: dup, type: teams, url: "https://hooks.example.com/b"}
`,
		want: []string{"services[dup]", "second service"},
	}, {
		name: "unknown type",
		yaml: `
services:
- {name: mail, type: email, url: "https://hooks.example.com/a"}
`,
		want: []string{"services[mail].type", `"email"`},
	}, {
		name: "unknown trigger",
		yaml: `
services:
- {name: trig, type: webhook, url: "https://hooks.example.com/a", triggers: [completed, deployed]}
`,
		want: []string{"services[trig].triggers", `"deployed"`},
	}, {
		name: "both url and urlFile",
		yaml: fmt.Sprintf(`
services:
- {name: both, type: slack, url: "https://hooks.example.com/a", urlFile: %q}
`, bothURLFile),
		want: []string{"services[both]", "url", "urlFile"},
	}, {
		name: "neither url nor urlFile",
		yaml: `
services:
- {name: neither, type: slack}
`,
		want: []string{"services[neither]", "url", "urlFile"},
	}, {
		name: "non-http URL",
		yaml: `
services:
- {name: ftp, type: webhook, url: "ftp://hooks.example.com` + secretPath + `"}
`,
		want:    []string{"services[ftp]", "URL"},
		wantNot: []string{"hooks.example.com", "T0SECRET", "pathsecret"},
	}, {
		name: "non-http URL in urlFile",
		yaml: fmt.Sprintf(`
services:
- {name: ftp-file, type: webhook, urlFile: %q}
`, ftpURLFile),
		want:    []string{"services[ftp-file]", "URL"},
		wantNot: []string{"hooks.example.com", "T0SECRET", "pathsecret"},
	}, {
		name: "relative URL",
		yaml: `
services:
- {name: relative, type: slack, url: "hooks.example.com` + secretPath + `"}
`,
		want:    []string{"services[relative]", "URL"},
		wantNot: []string{"hooks.example.com", "T0SECRET", "pathsecret"},
	}, {
		name: "unparsable URL",
		yaml: `
services:
- {name: unparsable, type: slack, url: "http://[::1` + secretPath + `"}
`,
		want:    []string{"services[unparsable]", "URL"},
		wantNot: []string{"T0SECRET", "pathsecret"},
	}, {
		name: "missing urlFile",
		yaml: fmt.Sprintf(`
services:
- {name: nofile, type: teams, urlFile: %q}
`, missing),
		want: []string{"services[nofile].urlFile"},
	}, {
		name: "missing tokenFile",
		yaml: fmt.Sprintf(`
services:
- {name: notoken, type: webhook, url: "https://hooks.example.com/a", tokenFile: %q}
`, missing),
		want: []string{"services[notoken].tokenFile"},
	}, {
		name: "invalid name",
		yaml: `
services:
- {name: Not_A_Label, type: slack, url: "https://hooks.example.com/a"}
`,
		want: []string{"services[0].name", "Not_A_Label"},
	}, {
		name: "unknown field",
		yaml: `
services:
- {name: typo, type: slack, uri: "https://hooks.example.com/a"}
`,
		want: []string{"uri"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			cfg, err := LoadConfig(writeFile(t, "notifications.yaml", tc.yaml))
			g.Expect(err).To(HaveOccurred())
			g.Expect(cfg).To(BeNil())
			for _, s := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(s))
			}
			for _, s := range tc.wantNot {
				g.Expect(err.Error()).NotTo(ContainSubstring(s), "the error shows the URL")
			}
		})
	}
}

// Every problem is reported at once, each naming its service.
func TestLoadConfigReportsEveryProblem(t *testing.T) {
	g := NewWithT(t)
	_, err := LoadConfig(writeFile(t, "notifications.yaml", `
services:
- {name: one, type: email, url: "https://hooks.example.com/a"}
- {name: two, type: slack, url: "mailto:ops@example.com"}
`))
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("services[one].type"))
	g.Expect(err.Error()).To(ContainSubstring("services[two]"))
	g.Expect(err.Error()).NotTo(ContainSubstring("ops@example.com"))
}

func TestLoadConfigReadsFiles(t *testing.T) {
	g := NewWithT(t)
	urlFile := writeFile(t, "url", "  https://hooks.example.com/services/T0/B0/x \n")
	tokenFile := writeFile(t, "token", "tok-123\n")
	cfg, err := LoadConfig(writeFile(t, "notifications.yaml", fmt.Sprintf(`
services:
- {name: files, type: webhook, urlFile: %q, tokenFile: %q, triggers: [rolled-back]}
- {name: inline, type: teams, url: "https://example.webhook.office.com/x"}
`, urlFile, tokenFile)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.Services).To(HaveLen(2))
	g.Expect(cfg.Services[0].target).To(Equal("https://hooks.example.com/services/T0/B0/x"))
	g.Expect(cfg.Services[0].token).To(Equal("tok-123"))
	g.Expect(cfg.Services[0].Triggers).To(Equal([]Trigger{RolledBack}))
	g.Expect(cfg.Services[1].target).To(Equal("https://example.webhook.office.com/x"))
	g.Expect(cfg.Services[1].template).NotTo(BeNil())
}
