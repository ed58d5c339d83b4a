package envelope

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// Domain separation of version 2 batch signatures (schemas/envelope-v2.md,
// "Batch signature"). The 0x00 and 0x01 prefixes are RFC 6962's, which
// keep a leaf from being passed off as an inner node and back; the
// context strings keep both the leaves and the signed root apart from
// anything else the identity key signs or hashes.
const (
	leafContext = "phix/v2/envelope\x00"
	rootContext = "phix/v2/batch-root\x00"
	leafPrefix  = 0x00
	nodePrefix  = 0x01
)

// leafHash returns the Merkle leaf of one envelope:
//
//	SHA-256(0x00 || "phix/v2/envelope\x00" || uint32be(len(header)) || header || digest)
func leafHash(header []byte, digest *[sha256.Size]byte) [HashSize]byte {
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(header)))
	h.Write([]byte{leafPrefix})
	h.Write([]byte(leafContext))
	h.Write(n[:])
	h.Write(header)
	h.Write(digest[:])
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// nodeHash returns SHA-256(0x01 || left || right).
func nodeHash(left, right *[HashSize]byte) [HashSize]byte {
	var b [1 + 2*HashSize]byte
	b[0] = nodePrefix
	copy(b[1:], left[:])
	copy(b[1+HashSize:], right[:])
	return sha256.Sum256(b[:])
}

// rootMessage returns the bytes the batch signature covers:
//
//	"phix/v2/batch-root\x00" || uint64be(tree_size) || root
//
// The tree size is signed with the root so that a proof cannot be read
// against a tree of another shape.
func rootMessage(size uint64, root *[HashSize]byte) []byte {
	m := make([]byte, 0, len(rootContext)+8+HashSize)
	m = append(m, rootContext...)
	m = binary.BigEndian.AppendUint64(m, size)
	return append(m, root[:]...)
}

// merkleTree returns the RFC 6962 Merkle Tree Hash of leaves (RFC 9162
// section 2.1.1) and, for each leaf, its audit path from the leaf up. It
// hashes each node once. leaves must not be empty.
func merkleTree(leaves [][HashSize]byte) (root [HashSize]byte, paths [][][HashSize]byte) {
	paths = make([][][HashSize]byte, len(leaves))
	return subtree(leaves, 0, paths), paths
}

// subtree hashes leaves, the leaves from index lo on, and appends to the
// path of each the sibling hash at this level.
func subtree(leaves [][HashSize]byte, lo int, paths [][][HashSize]byte) [HashSize]byte {
	n := len(leaves)
	if n == 1 {
		return leaves[0]
	}
	k := splitPoint(uint64(n))
	left := subtree(leaves[:k], lo, paths)
	right := subtree(leaves[k:], lo+int(k), paths)
	for i := lo; i < lo+int(k); i++ {
		paths[i] = append(paths[i], right)
	}
	for i := lo + int(k); i < lo+n; i++ {
		paths[i] = append(paths[i], left)
	}
	return nodeHash(&left, &right)
}

// splitPoint returns the largest power of two smaller than n, for n > 1.
func splitPoint(n uint64) uint64 {
	return 1 << (bits.Len64(n-1) - 1)
}

// pathLen returns the length of the audit path of leaf index in a tree of
// size leaves (index < size).
func pathLen(index, size uint64) int {
	n := 0
	for size > 1 {
		k := splitPoint(size)
		if index < k {
			size = k
		} else {
			index, size = index-k, size-k
		}
		n++
	}
	return n
}

// rootFromPath computes the root of a tree of size leaves from leaf index
// and its audit path, as RFC 9162 section 2.1.3.2 verifies an inclusion
// proof. It reports false if the path does not fit the tree's shape.
func rootFromPath(leaf [HashSize]byte, index, size uint64, path [][HashSize]byte) ([HashSize]byte, bool) {
	if index >= size {
		return [HashSize]byte{}, false
	}
	fn, sn := index, size-1
	r := leaf
	for i := range path {
		if sn == 0 {
			return [HashSize]byte{}, false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(&path[i], &r)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			r = nodeHash(&r, &path[i])
		}
		fn, sn = fn>>1, sn>>1
	}
	return r, sn == 0
}
