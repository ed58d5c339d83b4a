package envelope

import (
	"cmp"
	"slices"

	"phix.dev/phix/schemas"
)

// WrappedKey is an envelope's data key wrapped for one reader by a
// [keys.Provider]. Its bytes are opaque to this package.
type WrappedKey struct {
	// Recipient is the machine that can unwrap the key.
	Recipient string
	// Wrapped is the provider's wrapped form of the data key.
	Wrapped []byte
}

// sortWrappedKeys returns a copy of ws sorted by recipient, the canonical
// order. The Wrapped slices are shared with ws; callers only encode them.
func sortWrappedKeys(ws []WrappedKey) []WrappedKey {
	out := slices.Clone(ws)
	slices.SortStableFunc(out, func(a, b WrappedKey) int {
		return cmp.Compare(a.Recipient, b.Recipient)
	})
	return out
}

// checkWrappedKeys checks a list of wrapped keys in canonical order;
// needOne says that it may not be empty (version 1). A wrapped key's
// recipient need not be in the header's recipients: grants add readers
// after sealing.
func checkWrappedKeys(ws []WrappedKey, needOne bool) error {
	if len(ws) > MaxWrappedKeys {
		return tooLarge("wrapped_keys", MaxWrappedKeys)
	}
	if len(ws) == 0 && needOne {
		return malformed("wrapped_keys is empty")
	}
	names := make([]string, len(ws))
	for i, w := range ws {
		if err := checkName("wrapped_keys[].recipient", w.Recipient); err != nil {
			return err
		}
		if len(w.Wrapped) > MaxWrappedKeySize {
			return tooLarge("wrapped_keys[].wrapped", MaxWrappedKeySize)
		}
		if len(w.Wrapped) == 0 {
			return malformed("wrapped_keys[].wrapped is empty")
		}
		names[i] = w.Recipient
	}
	return checkSortedUnique("wrapped_keys", names)
}

func wrappedFromProto(ps []*schemas.WrappedKey) []WrappedKey {
	ws := make([]WrappedKey, len(ps))
	for i, p := range ps {
		ws[i] = WrappedKey{Recipient: p.GetRecipient(), Wrapped: p.GetWrapped()}
	}
	return ws
}

func wrappedToProto(ws []WrappedKey) []*schemas.WrappedKey {
	ps := make([]*schemas.WrappedKey, len(ws))
	for i, w := range ws {
		ps[i] = &schemas.WrappedKey{Recipient: w.Recipient, Wrapped: w.Wrapped}
	}
	return ps
}
