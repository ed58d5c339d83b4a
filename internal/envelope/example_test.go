package envelope_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

// exampleSigner signs with one fixed Ed25519 key. A real sender uses its
// [keys.Provider].
type exampleSigner struct{ priv ed25519.PrivateKey }

func (s exampleSigner) Sign(_ context.Context, msg []byte) ([]byte, string, error) {
	return ed25519.Sign(s.priv, msg), "lab-v1", nil
}

func Example() {
	ctx := context.Background()
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)

	// Sender: one data key per message, wrapped for each reader by the key
	// provider (here a stand-in), then one sealed copy per recipient.
	dk := keys.NewDataKey()
	defer dk.Destroy()
	wrapped := []envelope.WrappedKey{{Recipient: "clinic", Wrapped: []byte("wrapped for clinic")}}
	b, err := envelope.Seal(ctx, exampleSigner{priv}, envelope.Meta{
		MessageID:   "msg-42",
		Sender:      "lab",
		Recipients:  []string{"clinic"},
		Subject:     "phix.msg.lab.clinic.result",
		ContentType: "text/plain",
		Created:     time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	}, dk, wrapped, []byte("synthetic result: negative"))
	if err != nil {
		fmt.Println(err)
		return
	}

	// Reader: decode, check the subject it arrived on, verify with the
	// sender's key from the directory, unwrap its key, open.
	e, err := envelope.Decode(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := e.CheckSubject("phix.msg.lab.clinic.result"); err != nil {
		fmt.Println(err)
		return
	}
	// Header().Sender and SignerKeyID pick the key to look up; nothing in
	// the header is trusted before Verify succeeds.
	if err := e.Verify(pub); err != nil {
		fmt.Println(err)
		return
	}
	h := e.Header()
	fmt.Println("from", h.Sender, "key", h.SignerKeyID, "to", h.Recipients)
	if _, ok := e.WrappedKey("clinic"); !ok {
		fmt.Println("no key for clinic")
		return
	}
	// A real reader passes the wrapped key and h.DataKeyID to its
	// provider's UnwrapKey; the stand-in wrap just hands back dk.
	pt, err := e.Open(dk)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", pt)
	// Output:
	// from lab key lab-v1 to [clinic]
	// synthetic result: negative
}
