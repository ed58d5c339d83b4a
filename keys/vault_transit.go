package keys

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"
)

// transit is a small typed adapter over one transit engine mount. The
// untyped request and response maps of the API client stay in this file.
// Requests carry whatever token c holds; errors are the API client's, for
// the caller to classify.
type transit struct {
	c     *api.Client
	mount string
}

// transitKey is what phix needs to know about a transit key.
type transitKey struct {
	Type          string
	Derived       bool
	Exportable    bool
	PlaintextBack bool // allow_plaintext_backup
	Latest        int
	MinDecryption int
	// Public holds the Ed25519 public key of each version of a signing key.
	Public map[int]ed25519.PublicKey
}

// transitCiphertextPrefix starts every transit ciphertext and signature,
// followed by the key version and a colon.
const transitCiphertextPrefix = "vault:v"

func (t transit) path(op, key string) string { return t.mount + "/" + op + "/" + key }

// createKey creates key with the given type, or leaves an existing key as
// it is. Either way it returns the key's properties for the caller to check.
func (t transit) createKey(ctx context.Context, key, typ string, derived bool) (*transitKey, error) {
	_, err := t.c.Logical().WriteWithContext(ctx, t.path("keys", key), map[string]any{
		"type":                   typ,
		"derived":                derived,
		"exportable":             false,
		"allow_plaintext_backup": false,
	})
	if err != nil {
		return nil, err
	}
	return t.readKey(ctx, key)
}

// readKey returns the key's properties, or nil and no error if there is no
// such key.
func (t transit) readKey(ctx context.Context, key string) (*transitKey, error) {
	s, err := t.c.Logical().ReadWithContext(ctx, t.path("keys", key))
	if err != nil || s == nil || s.Data == nil {
		return nil, err
	}
	k := &transitKey{
		Type:          dataString(s.Data, "type"),
		Derived:       dataBool(s.Data, "derived"),
		Exportable:    dataBool(s.Data, "exportable"),
		PlaintextBack: dataBool(s.Data, "allow_plaintext_backup"),
		Latest:        dataInt(s.Data, "latest_version"),
		MinDecryption: dataInt(s.Data, "min_decryption_version"),
	}
	if k.Type != "ed25519" {
		return k, nil
	}
	versions, _ := s.Data["keys"].(map[string]any)
	k.Public = make(map[int]ed25519.PublicKey, len(versions))
	for v, raw := range versions {
		n, err := strconv.Atoi(v)
		fields, ok := raw.(map[string]any)
		if err != nil || !ok {
			return nil, fmt.Errorf("malformed version %q of key %s", v, key)
		}
		pub, err := base64.StdEncoding.DecodeString(dataString(fields, "public_key"))
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("malformed public key version %d of key %s", n, key)
		}
		k.Public[n] = ed25519.PublicKey(pub)
	}
	return k, nil
}

// encrypt encrypts plaintext under the latest version of a derived key,
// deriving the key from keyContext.
func (t transit) encrypt(ctx context.Context, key string, plaintext, keyContext []byte) (string, error) {
	s, err := t.c.Logical().WriteWithContext(ctx, t.path("encrypt", key), map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString(plaintext),
		"context":   base64.StdEncoding.EncodeToString(keyContext),
	})
	if err != nil {
		return "", err
	}
	ct := responseString(s, "ciphertext")
	if !strings.HasPrefix(ct, transitCiphertextPrefix) {
		return "", errors.New("encrypt response has no ciphertext")
	}
	return ct, nil
}

// decrypt opens ciphertext with a derived key and keyContext.
func (t transit) decrypt(ctx context.Context, key, ciphertext string, keyContext []byte) ([]byte, error) {
	s, err := t.c.Logical().WriteWithContext(ctx, t.path("decrypt", key), map[string]any{
		"ciphertext": ciphertext,
		"context":    base64.StdEncoding.EncodeToString(keyContext),
	})
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(responseString(s, "plaintext"))
}

// transitRewrapItem is one ciphertext to re-encrypt with its context.
type transitRewrapItem struct {
	Ciphertext string
	Context    []byte
}

// rewrap re-encrypts each item under the latest key version in one batch
// request, without the plaintext leaving Vault. Outputs are in input order.
// The first item that failed is reported by index.
func (t transit) rewrap(ctx context.Context, key string, items []transitRewrapItem) ([]string, error) {
	batch := make([]any, len(items))
	for i, it := range items {
		batch[i] = map[string]any{
			"ciphertext": it.Ciphertext,
			"context":    base64.StdEncoding.EncodeToString(it.Context),
		}
	}
	s, err := t.c.Logical().WriteWithContext(ctx, t.path("rewrap", key), map[string]any{
		"batch_input": batch,
	})
	if err != nil {
		return nil, err
	}
	var results []any
	if s != nil {
		results, _ = s.Data["batch_results"].([]any)
	}
	if len(results) != len(items) {
		return nil, fmt.Errorf("rewrap returned %d results for %d items", len(results), len(items))
	}
	out := make([]string, len(items))
	for i, r := range results {
		fields, _ := r.(map[string]any)
		if e := dataString(fields, "error"); e != "" {
			return nil, &transitItemError{Index: i, Msg: e}
		}
		out[i] = dataString(fields, "ciphertext")
		if !strings.HasPrefix(out[i], transitCiphertextPrefix) {
			return nil, &transitItemError{Index: i, Msg: "no ciphertext"}
		}
	}
	return out, nil
}

// transitItemError is the failure of one item of a batch request.
type transitItemError struct {
	Index int
	Msg   string
}

func (e *transitItemError) Error() string {
	return fmt.Sprintf("item %d: %s", e.Index, e.Msg)
}

// sign signs msg (not prehashed) with the latest version of an Ed25519 key
// and returns the raw signature and the version that made it.
func (t transit) sign(ctx context.Context, key string, msg []byte) ([]byte, int, error) {
	s, err := t.c.Logical().WriteWithContext(ctx, t.path("sign", key), map[string]any{
		"input": base64.StdEncoding.EncodeToString(msg),
	})
	if err != nil {
		return nil, 0, err
	}
	v, rest, ok := splitTransitVersion(responseString(s, "signature"))
	if !ok {
		return nil, 0, errors.New("sign response has no signature")
	}
	sig, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, 0, errors.New("sign response has a malformed signature")
	}
	return sig, v, nil
}

// rotate adds a new version to key and returns its number.
func (t transit) rotate(ctx context.Context, key string) (int, error) {
	if _, err := t.c.Logical().WriteWithContext(ctx, t.path("keys", key)+"/rotate", nil); err != nil {
		return 0, err
	}
	k, err := t.readKey(ctx, key)
	if err != nil {
		return 0, err
	}
	if k == nil {
		return 0, fmt.Errorf("key %s vanished after rotation", key)
	}
	return k.Latest, nil
}

// setMinDecryptionVersion makes Vault refuse to decrypt (or verify) with
// versions of key older than v.
func (t transit) setMinDecryptionVersion(ctx context.Context, key string, v int) error {
	_, err := t.c.Logical().WriteWithContext(ctx, t.path("keys", key)+"/config", map[string]any{
		"min_decryption_version": v,
	})
	return err
}

// splitTransitVersion splits "vault:vN:rest" into N and rest.
func splitTransitVersion(s string) (version int, rest string, ok bool) {
	s, ok = strings.CutPrefix(s, transitCiphertextPrefix)
	if !ok {
		return 0, "", false
	}
	num, rest, ok := strings.Cut(s, ":")
	if !ok {
		return 0, "", false
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 || num != strconv.Itoa(v) {
		return 0, "", false
	}
	return v, rest, true
}

func responseString(s *api.Secret, key string) string {
	if s == nil {
		return ""
	}
	return dataString(s.Data, key)
}

func dataString(d map[string]any, key string) string {
	s, _ := d[key].(string)
	return s
}

func dataBool(d map[string]any, key string) bool {
	b, _ := d[key].(bool)
	return b
}

// dataInt reads a number; the API client decodes numbers as json.Number.
func dataInt(d map[string]any, key string) int {
	switch n := d[key].(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}
