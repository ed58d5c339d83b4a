// Package schemas holds the wire schema of the phix envelope and the Go
// types generated from it.
//
// envelope.proto fixes field numbers and types; envelope-v1.md is the
// normative prose specification of format version 1 (canonical encoding,
// limits, key derivation, signature input and verification order), and
// envelope-v2.md that of version 2, which signs batches of envelopes over
// a Merkle root and lets wrapped keys live in the wrapped-key registry. Code
// outside internal/envelope should not build or parse these messages
// itself: the envelope package enforces the canonical form and the limits
// that the generated code knows nothing about.
//
// # Regenerating
//
// envelope.pb.go is generated and committed. After editing envelope.proto,
// run
//
//	go generate ./schemas
//
// with protoc (Debian package protobuf-compiler) and protoc-gen-go
// installed:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//
// Keep protoc-gen-go at the version of google.golang.org/protobuf in
// go.mod so that the generated code and the runtime agree.
package schemas

//go:generate protoc --go_out=. --go_opt=paths=source_relative envelope.proto
