package audit

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// hasher is RFC 6962 section 2.1 hashing over SHA-256.
var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash returns the Merkle leaf hash of a stored record: the RFC 6962
// leaf hash of its exact JSON bytes.
func LeafHash(record []byte) []byte { return hasher.HashLeaf(record) }

// tree is a compact Merkle range over leaves [0, size).
type tree struct{ r *compact.Range }

func newTree() *tree { return &tree{r: rangeFactory.NewEmptyRange(0)} }

// resumeTree rebuilds a tree from a checkpoint's frontier.
func resumeTree(size uint64, frontier [][]byte) (*tree, error) {
	r, err := rangeFactory.NewRange(0, size, frontier)
	if err != nil {
		return nil, fmt.Errorf("resuming merkle range: %v", err)
	}
	return &tree{r: r}, nil
}

func (t *tree) size() uint64 { return t.r.End() }

func (t *tree) append(leafHash []byte) {
	// Append fails only for a hash of the wrong shape, which LeafHash
	// never produces.
	if err := t.r.Append(leafHash, nil); err != nil {
		panic("audit: appending merkle leaf: " + err.Error())
	}
}

// root returns the tree hash; the empty tree's is SHA-256 of nothing.
func (t *tree) root() []byte {
	if t.r.End() == 0 {
		return hasher.EmptyRoot()
	}
	root, err := t.r.GetRootHash(nil)
	if err != nil {
		panic("audit: merkle root: " + err.Error())
	}
	return root
}

func (t *tree) frontier() [][]byte {
	hs := t.r.Hashes()
	out := make([][]byte, len(hs))
	copy(out, hs)
	return out
}
