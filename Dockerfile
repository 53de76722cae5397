# riskd and riskctl as static binaries on distroless: no shell, no package
# manager, an unprivileged user. From the repository root:
#   docker build -t riskd .
#   docker run -p 8080:8080 riskd
# deploy/compose.yaml runs it with Redis, Kafka, Prometheus and Grafana.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# The whole context, .git included: the build stamps the VCS revision
# that riskd -version and riskd_build_info report.
COPY . .
# CGO off: static binaries that need no libc in the final image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/riskd ./cmd/riskctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/riskd /out/riskctl /usr/local/bin/
USER nonroot:nonroot
# A container's logs are read by machines.
ENV RISKD_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/riskd"]
