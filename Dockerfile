# syntax=docker/dockerfile:1
# Build: a static binary, no cgo, reproducible paths.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/flowstudio .

# Run: distroless static (no shell, no libc), non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flowstudio /flowstudio
ENV FLOWSTUDIO_ADDR=0.0.0.0:8080 \
    FLOWSTUDIO_DATA_DIR=/tmp/flowstudio
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/flowstudio"]
CMD ["serve"]
