package policy

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// FileName is the policy's file name in a data folder.
const FileName = "policy.yaml"

//go:embed default.yaml
var defaultYAML []byte

// Default returns the demo policy that `phix up` writes on first start,
// with its comments: lab-feed sends hl7v2 and fhir to ehr-ingest and
// billing, ehr-ingest sends fhir to billing, and auditor reads for audit.
func Default() []byte { return append([]byte(nil), defaultYAML...) }

// DemoMachines returns the names of the machines of the [Default] policy.
func DemoMachines() []string {
	p, err := Parse("default", defaultYAML)
	if err != nil {
		panic("policy: default policy is invalid: " + err.Error()) // tested
	}
	return p.Active()
}

// WriteDefault writes the [Default] policy to path unless a file exists
// there already, and reports whether it wrote one. The file is readable
// by all (it holds no secret) and writable by the owner only.
func WriteDefault(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("policy: %w", err)
	}
	_, werr := f.Write(defaultYAML)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("policy: writing %s: %w", path, err)
	}
	return true, nil
}
