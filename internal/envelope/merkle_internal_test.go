package envelope

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// refMTH is the Merkle Tree Hash of RFC 9162 section 2.1.1 over leaf
// hashes, written as the RFC states it, for comparison with merkleTree.
func refMTH(leaves [][HashSize]byte) [HashSize]byte {
	n := len(leaves)
	if n == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	l, r := refMTH(leaves[:k]), refMTH(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// refPath is PATH(m, D[n]) of RFC 9162 section 2.1.3.1.
func refPath(m int, leaves [][HashSize]byte) [][HashSize]byte {
	n := len(leaves)
	if n == 1 {
		return nil
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	if m < k {
		return append(refPath(m, leaves[:k]), refMTH(leaves[k:]))
	}
	return append(refPath(m-k, leaves[k:]), refMTH(leaves[:k]))
}

func testLeaves(n int) [][HashSize]byte {
	out := make([][HashSize]byte, n)
	for i := range out {
		out[i] = sha256.Sum256([]byte(fmt.Sprintf("leaf %d", i)))
	}
	return out
}

func TestMerkleTreeMatchesRFC9162(t *testing.T) {
	for n := 1; n <= 70; n++ {
		leaves := testLeaves(n)
		root, paths := merkleTree(leaves)
		if want := refMTH(leaves); root != want {
			t.Fatalf("merkleTree(%d leaves) root = %x, want %x", n, root, want)
		}
		for m := range n {
			want := refPath(m, leaves)
			if diff := cmp.Diff(want, paths[m]); diff != "" {
				t.Fatalf("merkleTree(%d leaves) path of %d mismatch (-want +got):\n%s", n, m, diff)
			}
			if got := pathLen(uint64(m), uint64(n)); got != len(want) {
				t.Errorf("pathLen(%d, %d) = %d, want %d", m, n, got, len(want))
			}
			got, ok := rootFromPath(leaves[m], uint64(m), uint64(n), paths[m])
			if !ok || got != root {
				t.Errorf("rootFromPath(leaf %d of %d) = %x, %v; want %x, true", m, n, got, ok, root)
			}
		}
	}
}

// TestRootFromPathRefusesMisfits feeds proofs that do not fit. A proof
// that fits a tree of another size can reproduce the same root (leaf 2 of
// 6 and of 7 have paths of the same shape): that is why the signed root
// message includes the tree size.
func TestRootFromPathRefusesMisfits(t *testing.T) {
	leaves := testLeaves(6)
	root, paths := merkleTree(leaves)
	tests := []struct {
		name        string
		index, size uint64
		path        [][HashSize]byte
	}{
		{"index at the size", 6, 6, paths[5]},
		{"path of another leaf", 4, 6, paths[3]},
		{"smaller tree", 2, 4, paths[2]},
		{"path too long", 0, 6, append(paths[0], root)},
		{"path too short", 0, 6, paths[0][:2]},
		{"size zero", 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := rootFromPath(leaves[min(tt.index, 5)], tt.index, tt.size, tt.path)
			if ok && got == root {
				t.Errorf("rootFromPath(%d of %d) reproduced the root", tt.index, tt.size)
			}
		})
	}
}
