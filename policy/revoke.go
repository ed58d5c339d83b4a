package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"phix.dev/phix/internal/securefile"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrUnknownMachine is returned by [Revoke] for a machine the policy does
// not list.
var ErrUnknownMachine = errors.New("policy: unknown machine")

// Revoke returns the policy text data with machine marked revoked at at
// for reason, keeping the rest of the file and its comments. Revoking a
// revoked machine keeps the first revocation. The result is validated.
func Revoke(data []byte, machine, reason string, at time.Time) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, yamlMsg(err))
	}
	entry, err := machineNode(&doc, machine)
	if err != nil {
		return nil, err
	}
	if mapValue(entry, "revoked") != nil {
		return data, nil
	}
	rev := &yaml.Node{Kind: yaml.MappingNode}
	rev.Content = append(rev.Content,
		scalar("at"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!timestamp",
			Value: at.UTC().Format(time.RFC3339)})
	if reason != "" {
		rev.Content = append(rev.Content, scalar("reason"), scalar(reason))
	}
	entry.Content = append(entry.Content, scalar("revoked"), rev)

	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("policy: %v", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("policy: %v", err)
	}
	if _, err := Parse("revoked policy", b.Bytes()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// RevokeFile applies [Revoke] to the policy file at path, replacing it
// atomically so a reloading broker never reads half a file.
func RevokeFile(path, machine, reason string, at time.Time) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	out, err := Revoke(data, machine, reason, at)
	if err != nil {
		return err
	}
	if bytes.Equal(out, data) {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if err := securefile.Replace(path, out, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("policy: writing %s: %w", path, err)
	}
	return nil
}

// machineNode finds the mapping of machine in the machines list.
func machineNode(doc *yaml.Node, machine string) (*yaml.Node, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("%w: want a YAML mapping", ErrInvalid)
	}
	ms := mapValue(doc.Content[0], "machines")
	if ms == nil || ms.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%w: no machines list", ErrInvalid)
	}
	for _, m := range ms.Content {
		if n := mapValue(m, "name"); n != nil && n.Value == machine {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownMachine, machine)
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}
