# syntax=docker/dockerfile:1
# The service as a container: a static binary on a distroless base, run as a
# non-root user. Build: docker build --build-arg VERSION=$(git describe --always) -t acmecrm .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/acmecrm ./cmd/acmecrm

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/acmecrm /usr/local/bin/acmecrm
USER nonroot:nonroot
ENV PORT=3000
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/acmecrm"]
CMD ["serve"]
