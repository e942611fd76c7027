package cdevents

import "testing"

func TestImagePURL(t *testing.T) {
	for image, want := range map[string]string{
		"nginx":                           "pkg:oci/nginx@latest?repository_url=docker.io/library/nginx",
		"nginx:1.28":                      nginx128PURL,
		"library/nginx:1.28":              nginx128PURL,
		"index.docker.io/nginx:1.28":      nginx128PURL,
		"bitnami/redis:7.2":               "pkg:oci/redis@7.2?repository_url=docker.io/bitnami/redis",
		"ghcr.io/acme/shop@sha256:ab":     "pkg:oci/shop@sha256%3Aab?repository_url=ghcr.io/acme/shop",
		"localhost:5000/app:v2@sha256:cd": "pkg:oci/app@sha256%3Acd?repository_url=localhost%3A5000/app&tag=v2",
		"registry.example.com:443/team/sub/api:1.0-rc.1": "pkg:oci/api@1.0-rc.1?repository_url=registry.example.com%3A443/team/sub/api",
	} {
		got, err := imagePURL(image)
		if err != nil || got != want {
			t.Errorf("imagePURL(%q) = %q, %v; want %q", image, got, err, want)
		}
	}
	for _, image := range []string{"", "nginx:", "nginx@", "a//b:1", "nginx 1.28"} {
		if got, err := imagePURL(image); err == nil {
			t.Errorf("imagePURL(%q) = %q, want an error", image, got)
		}
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "not a url", "ftp://example.com", "/relative"} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q) succeeded, want an error", u)
		}
	}
}
