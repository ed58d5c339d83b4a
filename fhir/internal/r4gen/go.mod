// Module r4gen derives the R4 element table that package fhir embeds from
// the FHIR R4 protocol buffer descriptors published by github.com/google/fhir.
// It is a separate module so that phix itself does not depend on those
// 150 generated packages or their dated transitive dependencies.
// Run: cd fhir/internal/r4gen && go run . > ../../r4.txt
module phix.dev/phix/fhir/internal/r4gen

go 1.26.0

require (
	github.com/google/fhir/go v0.7.4
	google.golang.org/protobuf v1.36.12
)

require github.com/golang/protobuf v1.5.4 // indirect
