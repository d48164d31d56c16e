# make test   — install test tools when missing, go vet, go test -race ./...
# make build  — build bin/aagtm
# make demo   — run the one-command local demo
.PHONY: test build demo bench-dns bench-failover bench-scale bench-sentinel generate

test:
	./scripts/test.sh

build:
	go build -o bin/aagtm ./cmd/aagtm

demo:
	go run ./cmd/aagtm demo

bench-dns:
	./bench/dns/run.sh

bench-failover:
	./bench/failover/run.sh

bench-scale:
	./bench/scale/run.sh

generate:
	go generate ./api/...

bench-sentinel:
	./bench/sentinel/run.sh
