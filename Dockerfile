# KULTA controller image: a static binary on a distroless base, running as a non-root user.
# Build: docker build -t ghcr.io/false-systems/kulta:VERSION --build-arg VERSION=VERSION .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
COPY providers/ providers/
COPY analysis/ analysis/
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kulta-controller ./cmd/kulta-controller

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kulta-controller /kulta-controller
USER 65532:65532
ENTRYPOINT ["/kulta-controller"]
