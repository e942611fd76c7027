package cdevents

import (
	"errors"
	"fmt"
	"strings"
)

// defaultRegistry is the registry of image references that name none, as Docker resolves them.
const defaultRegistry = "docker.io"

// imagePURL converts a container image reference into an OCI package URL
// (https://github.com/package-url/purl-spec, type "oci"):
//
//	nginx:1.28                      → pkg:oci/nginx@1.28?repository_url=docker.io/library/nginx
//	ghcr.io/acme/shop@sha256:ab12   → pkg:oci/shop@sha256%3Aab12?repository_url=ghcr.io/acme/shop
//	localhost:5000/app:v2@sha256:cd → pkg:oci/app@sha256%3Acd?repository_url=localhost%3A5000/app&tag=v2
//
// The registry is the first path segment when it looks like a host (has a dot or a port, or is
// localhost), else docker.io, where single-segment names get the library/ prefix and
// index.docker.io is spelled docker.io. The version is the digest when there is one (the tag
// then goes into the tag qualifier), else the tag, else "latest" as Docker assumes. The name is
// the last path segment, lowercased.
func imagePURL(image string) (string, error) {
	ref, err := parseImage(image)
	if err != nil {
		return "", err
	}
	name := strings.ToLower(ref.path[strings.LastIndex(ref.path, "/")+1:])
	version := ref.tag
	qualifiers := "repository_url=" + escape(ref.registry+"/"+ref.path, true)
	switch {
	case ref.digest != "":
		version = ref.digest
		if ref.tag != "" {
			qualifiers += "&tag=" + escape(ref.tag, false)
		}
	case version == "":
		version = "latest"
	}
	return fmt.Sprintf("pkg:oci/%s@%s?%s", escape(name, false), escape(version, false), qualifiers), nil
}

// imageRef is a parsed image reference.
type imageRef struct {
	registry, path, tag, digest string
}

func parseImage(image string) (imageRef, error) {
	var ref imageRef
	if image == "" {
		return ref, errors.New("no container image")
	}
	if strings.ContainsAny(image, " \t\n") {
		return ref, fmt.Errorf("image %q contains white space", image)
	}
	name := image
	if at := strings.Index(name, "@"); at >= 0 {
		name, ref.digest = name[:at], name[at+1:]
		if ref.digest == "" {
			return ref, fmt.Errorf("image %q has an empty digest", image)
		}
	}
	if colon := strings.LastIndex(name, ":"); colon > strings.LastIndex(name, "/") {
		name, ref.tag = name[:colon], name[colon+1:]
		if ref.tag == "" {
			return ref, fmt.Errorf("image %q has an empty tag", image)
		}
	}
	ref.registry, ref.path = defaultRegistry, name
	if slash := strings.Index(name, "/"); slash > 0 {
		if host := name[:slash]; strings.ContainsAny(host, ".:") || host == "localhost" {
			ref.registry, ref.path = host, name[slash+1:]
		}
	}
	if ref.registry == "index.docker.io" {
		ref.registry = defaultRegistry
	}
	if ref.registry == defaultRegistry && !strings.Contains(ref.path, "/") {
		ref.path = "library/" + ref.path
	}
	for _, segment := range strings.Split(ref.path, "/") {
		if segment == "" {
			return ref, fmt.Errorf("image %q has an empty path segment", image)
		}
	}
	return ref, nil
}

// escape percent-encodes s for a package URL: unreserved characters stay, and so does '/' when
// keepSlash is set (qualifier values that are paths).
func escape(s string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
